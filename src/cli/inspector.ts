/**
 * The inspector page `pgnotify serve` shows at `/`: plain HTML and browser JavaScript in one
 * string (it survives `tsc` as is: no bundler, no asset copy). It reads the bridge like any
 * EventSource client would, polls `/status`, and sends test notifications through
 * `POST /notify`. The token comes from the page's `?token=` and is forwarded to both.
 * Every value from the wire is shown with `textContent`, never parsed as HTML.
 */
export const INSPECTOR_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pgnotify inspector</title>
<style>
  :root { color-scheme: light; --fg: #1d2330; --muted: #6b7385; --line: #e3e6ec; --accent: #2f6fdf; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: #f6f7f9; }
  header { display: flex; gap: 16px; align-items: center; padding: 10px 18px; background: #fff;
    border-bottom: 1px solid var(--line); }
  header h1 { font-size: 16px; margin: 0; }
  .pill { padding: 2px 10px; border-radius: 10px; background: #eee; font-size: 12px; }
  .pill.ok { background: #dcf3e3; color: #1b6b36; } .pill.bad { background: #fbe0e0; color: #9b1c1c; }
  .pill.wait { background: #fff2cc; color: #7a5b00; }
  main { display: grid; grid-template-columns: 320px 1fr; gap: 14px; padding: 14px 18px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 8px; }
  label { display: block; font-size: 12px; color: var(--muted); margin-top: 6px; }
  input, textarea { width: 100%; font: 13px ui-monospace, monospace; padding: 5px 6px;
    border: 1px solid var(--line); border-radius: 4px; }
  button { margin-top: 8px; padding: 5px 14px; border: 0; border-radius: 4px; background: var(--accent);
    color: #fff; font-weight: 600; cursor: pointer; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; }
  th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { color: var(--muted); font-weight: 500; }
  td.payload { font-family: ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
  .num { text-align: right; font-variant-numeric: tabular-nums; }
  #result { font-size: 12px; color: var(--muted); margin-top: 6px; min-height: 1em; }
  .side { display: flex; flex-direction: column; gap: 14px; }
  .muted { color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>pgnotify inspector</h1>
  <span>stream <span id="stream" class="pill wait">connecting</span></span>
  <span>listener <span id="listener" class="pill wait">?</span></span>
  <span class="muted" id="backend"></span>
</header>
<main>
  <div class="side">
    <section>
      <h2>Channels</h2>
      <label for="channels">One per line</label>
      <textarea id="channels" rows="4"></textarea>
      <button id="connect" type="button">Connect</button>
    </section>
    <section>
      <h2>Send a test notification</h2>
      <form id="send">
        <label for="send-channel">Channel</label>
        <input id="send-channel" name="channel" autocomplete="off">
        <label for="send-payload">Payload (text or JSON)</label>
        <textarea id="send-payload" name="payload" rows="3"></textarea>
        <button id="send-button" type="submit">Send</button>
        <div id="result"></div>
      </form>
    </section>
    <section>
      <h2>Per channel</h2>
      <table><thead><tr><th>channel</th><th class="num">total</th><th class="num" title="average over the last 10 s">per s</th></tr></thead>
      <tbody id="rates"></tbody></table>
    </section>
    <section>
      <h2>Gaps</h2>
      <table><tbody id="gaps"><tr><td class="muted">none</td></tr></tbody></table>
    </section>
  </div>
  <section>
    <h2>Tail <span class="muted" id="count"></span></h2>
    <table><thead><tr><th>time</th><th>channel</th><th>pid</th><th>payload</th></tr></thead>
    <tbody id="tail"></tbody></table>
  </section>
</main>
<script>
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var token = params.get('token') || sessionStorage.getItem('pgnotify-token') || '';
  if (token) sessionStorage.setItem('pgnotify-token', token);
  var TAIL = 200;
  var source = null;
  var totals = new Map();
  var recent = [];
  var received = 0;
  var $ = function (id) { return document.getElementById(id); };

  function authHeaders(extra) {
    var h = extra || {};
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }
  function cell(row, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }
  function pill(el, text, kind) { el.textContent = text; el.className = 'pill ' + kind; }
  function time(ms) { return new Date(ms).toISOString().slice(11, 23); }
  function channelList() {
    return $('channels').value.split('\\n').map(function (s) { return s.trim(); })
      .filter(function (s) { return s !== ''; });
  }

  function connect() {
    if (source) source.close();
    var channels = channelList();
    if (channels.length === 0) { pill($('stream'), 'no channel', 'wait'); return; }
    var q = new URLSearchParams();
    channels.forEach(function (c) { q.append('channel', c); });
    if (token) q.set('token', token);
    if (!$('send-channel').value) $('send-channel').value = channels[0];
    pill($('stream'), 'connecting', 'wait');
    source = new EventSource('events?' + q.toString());
    source.onopen = function () { pill($('stream'), 'open', 'ok'); pollStatus(); };
    source.onerror = function () {
      pill($('stream'), source.readyState === 2 ? 'closed (refused?)' : 'reconnecting', 'bad');
    };
    source.onmessage = function (e) { onNotification(JSON.parse(e.data)); };
    source.addEventListener('gap', function (e) { onGap(JSON.parse(e.data)); });
    source.addEventListener('end', function (e) {
      var d = JSON.parse(e.data);
      pill($('stream'), 'ended: ' + d.reason, 'bad');
    });
  }

  function onNotification(n) {
    received++;
    var t = totals.get(n.channel) || 0;
    totals.set(n.channel, t + 1);
    recent.push({ channel: n.channel, at: Date.now() });
    var row = document.createElement('tr');
    cell(row, time(n.receivedAt));
    cell(row, n.channel);
    cell(row, String(n.pid), 'num');
    cell(row, typeof n.payload === 'string' ? n.payload : JSON.stringify(n.payload), 'payload');
    var tail = $('tail');
    tail.insertBefore(row, tail.firstChild);
    while (tail.children.length > TAIL) tail.removeChild(tail.lastChild);
    $('count').textContent = '(' + received + ' received, last ' + Math.min(received, TAIL) + ' shown)';
    renderRates();
  }

  function onGap(g) {
    var gaps = $('gaps');
    if (gaps.querySelector('.muted')) gaps.textContent = '';
    var row = document.createElement('tr');
    cell(row, time(Date.now()));
    cell(row, g.reason + ': ' + g.channels.join(', ') + (g.downtimeMs !== undefined ? ' (' + g.downtimeMs + ' ms)' : ''));
    gaps.insertBefore(row, gaps.firstChild);
  }

  function renderRates() {
    var cutoff = Date.now() - 10000;
    while (recent.length > 0 && recent[0].at < cutoff) recent.shift();
    var per = new Map();
    recent.forEach(function (r) { per.set(r.channel, (per.get(r.channel) || 0) + 1); });
    var body = $('rates');
    body.textContent = '';
    Array.from(totals.keys()).sort().forEach(function (c) {
      var row = document.createElement('tr');
      cell(row, c);
      cell(row, String(totals.get(c)), 'num');
      cell(row, ((per.get(c) || 0) / 10).toFixed(1), 'num');
      body.appendChild(row);
    });
  }

  function pollStatus() {
    fetch('status', { headers: authHeaders() }).then(function (r) {
      if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
      return r.json();
    }).then(function (s) {
      pill($('listener'), s.state, s.state === 'listening' ? 'ok' : 'bad');
      $('backend').textContent = (s.pid ? 'backend pid ' + s.pid + ' · ' : '') + s.clients + (s.clients === 1 ? ' client' : ' clients') +
        (s.pausedClients > 0 ? ' (' + s.pausedClients + ' paused)' : '');
      if ($('channels').value === '' && s.channels && s.channels.length > 0 && !source) {
        $('channels').value = s.channels.join('\\n');
        connect();
      }
    }).catch(function (e) { pill($('listener'), 'status: ' + e.message, 'bad'); });
  }

  $('connect').addEventListener('click', connect);
  $('send').addEventListener('submit', function (e) {
    e.preventDefault();
    var body = JSON.stringify({ channel: $('send-channel').value, payload: $('send-payload').value });
    $('result').textContent = 'sending…';
    fetch('notify', { method: 'POST', body: body, headers: authHeaders({ 'Content-Type': 'application/json' }) })
      .then(function (r) { return r.text().then(function (t) { return { ok: r.ok, text: t }; }); })
      .then(function (r) { $('result').textContent = r.ok ? 'sent' : 'refused: ' + r.text; })
      .catch(function (err) { $('result').textContent = 'failed: ' + err.message; });
  });
  var fromUrl = params.getAll('channel');
  if (fromUrl.length > 0) { $('channels').value = fromUrl.join('\\n'); connect(); }
  pollStatus();
  setInterval(pollStatus, 2000);
  setInterval(renderRates, 1000);
})();
</script>
</body>
</html>
`;
