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

  async reset() {
    const reply = await fetch(`${this.base}/_fake/reset`, { method: 'POST' });
    if (!reply.ok) throw new Error(`POST /_fake/reset answered ${reply.status}`);
  }

  stop() { return this.child.stop(); }
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
function proxyConfig({ listen, metrics, slackUrl, queueCapacity, apiStages, webhookChannel }) {
  const sink = stage('slack_sink', `url = "${slackUrl}"\n`);
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

[[pipeline]]
name = "api"
style = "api"
paths = ["/", "/api/chat.postMessage"]
${apiStages}${FAST_RETRY}${sink}
[[pipeline]]
name = "webhook"
style = "webhook"
paths = ["/services/*"]
default_channel = "${webhookChannel}"
${FAST_RETRY}${sink}`;
}

class SlackProxy {
  // Options: slackUrl (required), queueCapacity (1000), apiStages (stages
  // before the API pipeline's retry and sink), webhookChannel.
  static async start(options) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slack-proxy-clients-'));
    const settings = {
      queueCapacity: 1000, apiStages: '', webhookChannel: '#alerts-webhook', ...options,
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
        { ...process.env, SLACK_TOKEN: PROXY_TOKEN });
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

  // Value of one series, e.g. metric('slackproxy_requests_succeeded_total', '#a');
  // 0 when absent, as Prometheus treats an untouched counter.
  async metric(name, channel) {
    const text = await (await fetch(this.metricsUrl())).text();
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`)) continue;
      if (!line.includes(`channel="${channel}"`)) continue;
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return 0;
  }

  async waitForMetric(name, channel, expected) {
    await waitFor(`${name}{channel="${channel}"} == ${expected}`,
      async () => (await this.metric(name, channel)) === expected);
  }

  // Stops it and removes its files; the log stays in memory for a failure message.
  async stop() {
    await this.child.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { FakeSlack, SlackProxy, PROXY_TOKEN, rejection, stage, waitFor };
