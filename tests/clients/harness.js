// Runs the real fake-slack and slack-proxy binaries for the client tests.
// CTest hands their paths in SLACK_PROXY_BIN and FAKE_SLACK_BIN.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

// Only reached when something is broken; the suite stays fast when it works.
const DEADLINE_MS = 10_000;
const POLL_MS = 25;

// The proxy's own Slack token. Tests check it never reaches what the fake
// Slack shows (the fake records only whether an Authorization header came).
const PROXY_TOKEN = 'xoxb-proxy-token-clients-test';

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through ctest`);
  return value;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `probe` until it returns a truthy value; throws `what` after the deadline.
async function waitFor(what, probe, deadlineMs = DEADLINE_MS) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    }
    await sleep(POLL_MS);
  }
}

// The error `promise` rejects with; fails the test if it resolves.
async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('the call resolved, but a rejection was expected');
}

// A TCP port on 127.0.0.1 that was free a moment ago.
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// A child process whose stdout and stderr are kept in memory for diagnostics.
class Child {
  constructor(argv, env) {
    this.output = '';
    this.exitCode = null;
    this.process = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code, signal) => {
        this.exitCode = code ?? 128 + os.constants.signals[signal];
        resolve(this.exitCode);
      });
      this.process.once('error', (error) => {
        this.output += `spawn failed: ${error.message}\n`;
        this.exitCode = -1;
        resolve(-1);
      });
    });
    const keep = (chunk) => { this.output += chunk.toString(); };
    this.process.stdout.on('data', keep);
    this.process.stderr.on('data', keep);
  }

  get running() { return this.exitCode === null; }

  // SIGTERM, then SIGKILL if it has not exited within the deadline.
  async stop() {
    if (!this.running) return this.exitCode;
    this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.process.kill('SIGKILL'), DEADLINE_MS);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

// The fake Slack Web API (tests/fake_slack) as a process, driven through its
// control API.
class FakeSlack {
  static async start() {
    const child = new Child([requiredEnv('FAKE_SLACK_BIN'), '--port', '0', '--quiet'], process.env);
    const url = await waitFor('fake-slack to listen', () => {
      if (!child.running) {
        throw new Error(`fake-slack exited with ${child.exitCode}:\n${child.output}`);
      }
      const match = child.output.match(/listening on (http:\/\/127\.0\.0\.1:\d+)\//);
      return match && match[1];
    });
    return new FakeSlack(child, url);
  }

  constructor(child, base) {
    this.child = child;
    this.base = base;  // "http://127.0.0.1:<port>"
  }

  // Where a slack_sink posts.
  get url() { return `${this.base}/api/chat.postMessage`; }

  // What the fake received, oldest first: {method, path, channel, body,
  // authorization_present, authorization_sha256 (hex, "" when absent), at_ms},
  // with `json` added: the parsed body.
  async requests() {
    const reply = await fetch(`${this.base}/_fake/requests`);
    if (!reply.ok) throw new Error(`GET /_fake/requests answered ${reply.status}`);
    return (await reply.json()).map((r) => ({ ...r, json: JSON.parse(r.body) }));
  }

  async waitForRequests(count) {
    return waitFor(`${count} request(s) at the fake Slack`, async () => {
      const got = await this.requests();
      return got.length >= count && got;
    });
  }

  // The next `times` (1) requests, of `channel` only if given, get this reply:
  // {error: "channel_not_found"}, {status: 429, retry_after: 60}, ...
  // (POST /_fake/enqueue, tests/fake_slack/fake_slack.h).
  async enqueue(rule) {
    const reply = await fetch(`${this.base}/_fake/enqueue`, {
      method: 'POST', body: JSON.stringify(rule), headers: { 'Content-Type': 'application/json' },
    });
    if (!reply.ok) throw new Error(`POST /_fake/enqueue answered ${reply.status}`);
  }

  async reset() {
    const reply = await fetch(`${this.base}/_fake/reset`, { method: 'POST' });
    if (!reply.ok) throw new Error(`POST /_fake/reset answered ${reply.status}`);
  }

  stop() { return this.child.stop(); }
}

// `name{k="v",...}` as Prometheus writes it, for messages.
function seriesName(name, labels) {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return pairs.length ? `${name}{${pairs.join(',')}}` : name;
}

// The labels of a series line's `{...}` part, unescaped.
function parseLabels(text) {
  const labels = {};
  for (const [, key, raw] of (text ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    labels[key] = raw.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

function sameLabels(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

// The value of the series `name` with exactly `labels` in Prometheus text
// format, or undefined when there is none.
function seriesValue(text, name, labels) {
  for (const line of text.split('\n')) {
    const match = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!match || match[1] !== name) continue;
    if (sameLabels(parseLabels(match[2]), labels)) return Number(match[3]);
  }
  return undefined;
}

function familyExported(text, name) {
  return text.split('\n').some((line) => line.startsWith(`# TYPE ${name} `));
}

// The families README.md's "## Metrics" table documents, read at run time
// as the C++ harness reads them (tests/integration/harness.cc), where an
// end-to-end test proves the binary exports each one.
let documented;
function documentedFamilies() {
  if (documented) return documented;
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  documented = new Set();
  // The table right under "## Metrics", before any subsection (the admin
  // API's tables are no metrics); a "# comment" in a code block is no heading.
  let inSection = false;
  let inCode = false;
  for (const line of readme.split('\n')) {
    if (line.startsWith('```')) inCode = !inCode;
    if (!inCode && line.startsWith('#')) {
      inSection = line === '## Metrics';
    } else if (inSection) {
      const row = line.match(/^\| `([a-z_:][a-z0-9_:]*)/);
      if (row) documented.add(row[1]);
    }
  }
  if (documented.size === 0) throw new Error('README.md has no "## Metrics" table');
  return documented;
}

// Why an absent series may read as 0: prometheus-cpp prints nothing, not
// even `# TYPE`, for a family with no series yet (a counter by channel
// before its first count). So its family must be in the scrape, or be one
// README.md documents; a renamed metric is neither.
function zeroWhenAbsent(text, name) {
  return familyExported(text, name) || documentedFamilies().has(name);
}

// Stages as raw TOML, appended to a [[pipeline]] table.
function stage(plugin, settings = '') {
  return `\n[[pipeline.stage]]\nplugin = "${plugin}"\n${settings}`;
}

// Retries fast, so a transient hiccup does not stall a test.
const FAST_RETRY = stage('slack_retry',
  'max_retries = 3\ninitial_backoff = "50ms"\nmax_backoff = "200ms"\njitter = 0.0\n');

// The client-facing setup: an API-style pipeline where the SDK's slackApiUrl
// points, and an incoming-webhook-style one under /services/.
function proxyConfig({
  listen, metrics, slackUrl, queueCapacity, apiStages, apiSinkSettings, adminSettings, webhookChannel,
}) {
  const sink = stage('slack_sink', `url = "${slackUrl}"\n`);
  const apiSink = stage('slack_sink', `url = "${slackUrl}"\n${apiSinkSettings}`);
  return `[server]
listen = "${listen}"

[metrics]
listen = "${metrics}"

[queue]
backend = "memory"
capacity = ${queueCapacity}
retry_after = "5s"

[dispatcher]
shutdown_timeout = "500ms"

[log]
level = "info"

[admin]
${adminSettings}
[[pipeline]]
name = "api"
style = "api"
paths = ["/", "/api/chat.postMessage"]
${apiStages}${FAST_RETRY}${apiSink}
[[pipeline]]
name = "webhook"
style = "webhook"
paths = ["/services/*"]
default_channel = "${webhookChannel}"
${FAST_RETRY}${sink}`;
}

class SlackProxy {
  // Options: slackUrl (required), queueCapacity (1000), apiStages (stages
  // before the API pipeline's retry and sink), apiSinkSettings (more lines
  // for its sink), adminSettings (the [admin] table's lines), webhookChannel,
  // env (more environment variables, e.g. SLACK_PROXY_ADMIN_KEY).
  static async start(options) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slack-proxy-clients-'));
    const settings = {
      queueCapacity: 1000, apiStages: '', apiSinkSettings: '', adminSettings: '',
      webhookChannel: '#alerts-webhook', env: {}, ...options,
    };
    // A free port can be taken again before the proxy binds it: the proxy
    // then exits saying so, and we try fresh ports.
    for (let attempt = 0; ; ++attempt) {
      const ports = { listen: await freePort(), metrics: await freePort() };
      const configPath = path.join(dir, 'slack-proxy.toml');
      fs.writeFileSync(configPath, proxyConfig({
        ...settings,
        listen: `127.0.0.1:${ports.listen}`,
        metrics: `127.0.0.1:${ports.metrics}`,
      }));
      const child = new Child([requiredEnv('SLACK_PROXY_BIN'), '--config', configPath],
        { ...process.env, SLACK_TOKEN: PROXY_TOKEN, ...settings.env });
      const proxy = new SlackProxy(child, dir, ports);
      try {
        await proxy.waitHealthy();
        return proxy;
      } catch (error) {
        await child.stop();
        if (attempt < 2 && child.output.includes('already in use')) continue;
        throw error;
      }
    }
  }

  constructor(child, dir, ports) {
    this.child = child;
    this.dir = dir;
    this.ports = ports;
  }

  url(pathname = '/') { return `http://127.0.0.1:${this.ports.listen}${pathname}`; }
  metricsUrl(pathname = '/metrics') { return `http://127.0.0.1:${this.ports.metrics}${pathname}`; }
  get log() { return this.child.output; }

  async waitHealthy() {
    await waitFor('slack-proxy to answer GET /health', async () => {
      if (!this.child.running) {
        throw new Error(
          `slack-proxy exited with ${this.child.exitCode} before it was healthy:\n${this.log}`);
      }
      try {
        const reply = await fetch(this.metricsUrl('/health'), { signal: AbortSignal.timeout(500) });
        return reply.status === 200;
      } catch {
        return false;  // not listening yet
      }
    });
  }

  async scrape() {
    const reply = await fetch(this.metricsUrl());
    if (!reply.ok) throw new Error(`GET /metrics answered ${reply.status}`);
    return reply.text();
  }

  // Value of one series, e.g. metric('slackproxy_requests_succeeded_total',
  // { channel: '#a' }). Throws when the series is absent: a renamed or
  // unexported metric must fail a test, not read as 0.
  async metric(name, labels = {}) {
    const text = await this.scrape();
    const value = seriesValue(text, name, labels);
    if (value === undefined) {
      throw new Error(`${seriesName(name, labels)} is not exported by the proxy`);
    }
    return value;
  }

  // A counter's value, where an absent series reads 0 only as
  // zeroWhenAbsent allows; otherwise it throws.
  async counter(name, labels = {}) {
    const text = await this.scrape();
    const value = seriesValue(text, name, labels);
    if (value !== undefined) return value;
    if (zeroWhenAbsent(text, name)) return 0;
    throw new Error(`${seriesName(name, labels)} is not exported, nor is its family documented`);
  }

  // Whether the series has the value `expected`. An expected 0 also holds
  // for an absent series as zeroWhenAbsent allows.
  async metricIs(name, labels, expected) {
    const text = await this.scrape();
    const value = seriesValue(text, name, labels);
    if (value !== undefined) return value === expected;
    return expected === 0 && zeroWhenAbsent(text, name);
  }

  async waitForMetric(name, labels, expected) {
    await waitFor(`${seriesName(name, labels)} == ${expected}`,
      () => this.metricIs(name, labels, expected));
  }

  // Resolves once the proxy has recorded the outcome of every message it
  // accepted for `channel`: exactly `count` received, `count` succeeded and
  // nothing queued or in flight. A message leaves the queue only after its
  // outcome is recorded, so from then on no send of it, first or repeated,
  // can still reach the fake Slack: what the fake holds is final.
  async waitSettled(channel, count) {
    await waitFor(`${count} message(s) for ${channel} received and succeeded, queue empty`,
      async () => (await this.metricIs('slackproxy_requests_received_total', { channel }, count))
        && (await this.metricIs('slackproxy_requests_succeeded_total', { channel }, count))
        && (await this.metricIs('slackproxy_queue_size', {}, 0)));
  }

  // Stops it and removes its files; the log stays in memory for a failure message.
  async stop() {
    await this.child.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { FakeSlack, SlackProxy, PROXY_TOKEN, rejection, stage, waitFor };
