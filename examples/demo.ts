// `npm start`: the pgnotify demo, the same as `pgnotify demo`. Without DATABASE_URL it runs on
// a throwaway embedded PostgreSQL; with it, on that server.
import { runDemo } from '../src/cli/demo.js';

process.exitCode = await runDemo({ url: process.env.DATABASE_URL || undefined });
