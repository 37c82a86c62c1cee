/**
 * Statistics and plain-text tables for the benchmark output.
 */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

/** A number with thousands separators and `digits` decimals; '—' for NaN/undefined. */
export function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** `value / reference` as "1.23×"; '—' when either is missing. */
export function ratio(value: number | undefined, reference: number | undefined): string {
  if (
    value === undefined ||
    reference === undefined ||
    !Number.isFinite(value) ||
    !Number.isFinite(reference) ||
    reference === 0
  ) {
    return '—';
  }
  return `${(value / reference).toFixed(2)}×`;
}

export type Better = 'lower' | 'higher';

/** The best of `values` (ignoring NaN/undefined) in the given direction. */
export function best(values: readonly (number | undefined)[], better: Better): number | undefined {
  let result: number | undefined;
  for (const value of values) {
    if (value === undefined || !Number.isFinite(value)) continue;
    if (result === undefined || (better === 'lower' ? value < result : value > result)) {
      result = value;
    }
  }
  return result;
}

/**
 * Renders a table: the first `leftColumns` columns left-aligned, the others right-aligned.
 * `notes` are printed under it.
 */
export function table(
  title: string,
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  notes: readonly string[] = [],
  leftColumns = 1,
): string {
  const widths = headers.map((header, col) =>
    Math.max(header.length, ...rows.map((row) => (row[col] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, col) =>
        col < leftColumns ? cell.padEnd(widths[col] ?? 0) : cell.padStart(widths[col] ?? 0),
      )
      .join('  ')
      .trimEnd();
  const out = [
    '',
    title,
    line(headers),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    ...notes.map((note) => `  ${note}`),
  ];
  return out.join('\n');
}

export interface Metric {
  key: string;
  label: string;
  better: Better;
  digits: number;
}

/**
 * A table with one row per contestant and, per metric, the median and its ratio to the
 * baseline row and to the best peer row (best in that metric's direction).
 */
export function ratioTable(
  title: string,
  rows: readonly string[],
  baseline: string,
  peers: readonly string[],
  metrics: readonly Metric[],
  medians: Readonly<Record<string, Readonly<Record<string, number>>>>,
  notes: readonly string[],
): string {
  const withPeers = peers.length > 0;
  const headers = ['contestant'];
  for (const m of metrics) {
    headers.push(m.label, `×${baseline}`);
    if (withPeers) headers.push('×best peer');
  }
  const body = rows.map((row) => {
    const cells = [row];
    for (const m of metrics) {
      const value = medians[row]?.[m.key];
      cells.push(fmt(value, m.digits), ratio(value, medians[baseline]?.[m.key]));
      if (withPeers) {
        const peerBest = best(
          peers.map((peer) => medians[peer]?.[m.key]),
          m.better,
        );
        cells.push(ratio(value, peerBest));
      }
    }
    return cells;
  });
  const directions = metrics.map((m) => `${m.label}: ${m.better} is better`).join('; ');
  const legend = `medians; ×${baseline} = value / ${baseline}'s${withPeers ? `; ×best peer = value / the best of ${peers.join(', ')}` : ''}`;
  return table(title, headers, body, [legend, directions, ...notes]);
}
