// The official @slack/web-api WebClient, unmodified, pointed at slack-proxy
// as its slackApiUrl. It posts form-encoded bodies with blocks and
// attachments as JSON strings; the fake Slack behind the proxy must still
// receive them as JSON, field by field.
'use strict';

const assert = require('node:assert/strict');
const { createHash } = require('node:crypto');
const { after, before, beforeEach, describe, test } = require('node:test');
const { ErrorCode, LogLevel, WebClient } = require('@slack/web-api');

const { FakeSlack, PROXY_TOKEN, SlackProxy, rejection, stage } = require('./harness');

const CLIENT_TOKEN = 'xoxb-client-test';

// The fake reports a hash of the Authorization header it got, never the header.
function sha256Hex(text) {
  return createHash('sha256').update(text).digest('hex');
}

function webClient(proxy, retryConfig) {
  return new WebClient(CLIENT_TOKEN, {
    slackApiUrl: proxy.url('/api/'),
    logLevel: LogLevel.ERROR,
    // Failures are asserted as they come; the SDK's default retries for ~30 minutes.
    retryConfig: retryConfig ?? { retries: 0 },
  });
}

describe('WebClient chat.postMessage through the proxy', () => {
  let slack;
  let proxy;
  let client;

  before(async () => {
    slack = await FakeSlack.start();
    proxy = await SlackProxy.start({ slackUrl: slack.url });
    client = webClient(proxy);
  });

  after(async () => {
    await proxy?.stop();
    await slack?.stop();
  });

  beforeEach(() => slack.reset());

  // The one request the fake got for `channel`, counted only once the proxy
  // has recorded the message's outcome: a late duplicate (a retry of a send
  // that did arrive) would come before that, and is caught here.
  async function onlyRequest(channel) {
    await proxy.waitSettled(channel, 1);
    const [received, ...rest] = await slack.requests();
    assert.deepEqual(rest, [], 'exactly one message reaches Slack');
    return received;
  }

  // Nothing of `channel` was queued: the proxy counted no message for it and,
  // with its queue empty, has nothing left that could still reach Slack.
  async function nothingQueued(channel) {
    await proxy.waitForMetric('slackproxy_queue_size', {}, 0);
    await proxy.waitForMetric('slackproxy_requests_received_total', { channel }, 0);
  }

  test('text arrives as JSON; a token in the form body is not forwarded', async () => {
    // A per-call token goes into the form body as well as the Authorization header.
    const result = await client.chat.postMessage({
      token: CLIENT_TOKEN,
      channel: '#web-api-text',
      text: 'hello from the SDK',
    });
    assert.equal(result.ok, true);

    const received = await onlyRequest('#web-api-text');
    assert.equal(received.method, 'POST');
    assert.equal(received.path, '/api/chat.postMessage');
    assert.equal(received.channel, '#web-api-text');
    assert.equal(received.authorization_present, true);
    // The default delivery_token = "proxy": the proxy's token delivers, not the caller's.
    assert.equal(received.authorization_sha256, sha256Hex(`Bearer ${PROXY_TOKEN}`),
      "Slack received the proxy's own token");
    assert.notEqual(received.authorization_sha256, sha256Hex(`Bearer ${CLIENT_TOKEN}`),
      "Slack did not receive the caller's token");
    assert.deepEqual(received.json, { channel: '#web-api-text', text: 'hello from the SDK' });
    assert.ok(!received.body.includes(CLIENT_TOKEN), 'the caller token is not forwarded');
    assert.ok(!received.body.includes(PROXY_TOKEN), 'the proxy token is not in the body');
  });

  test('blocks arrive as a JSON array, deep-equal to what the caller sent', async () => {
    const blocks = [
      { type: 'header', text: { type: 'plain_text', text: 'Deploy finished', emoji: true } },
      {
        type: 'section',
        text: {
          type: 'mrkdwn',
          text: '*api* v1.2.3 is live & healthy <https://example.com|dashboard>',
        },
        fields: [
          { type: 'mrkdwn', text: '*Env:*\nproduction' },
          { type: 'mrkdwn', text: '*By:*\n@deployer' },
        ],
      },
      { type: 'divider' },
      { type: 'context', elements: [{ type: 'mrkdwn', text: 'ünïcødé ✓ "quoted"' }] },
    ];
    const result = await client.chat.postMessage({
      channel: '#web-api-blocks',
      text: 'Deploy finished',
      blocks,
    });
    assert.equal(result.ok, true);

    const received = await onlyRequest('#web-api-blocks');
    assert.equal(received.channel, '#web-api-blocks');
    assert.equal(received.json.text, 'Deploy finished');
    assert.deepEqual(received.json.blocks, blocks);
  });

  test('attachments arrive as a JSON array, deep-equal to what the caller sent', async () => {
    const attachments = [
      {
        fallback: 'Disk almost full on db-1',
        color: '#d50200',
        pretext: 'Alert',
        title: 'Disk almost full',
        title_link: 'https://grafana.example.com/d/disk?var-host=db-1&from=now-1h',
        text: 'db-1: 93% used',
        fields: [
          { title: 'Host', value: 'db-1', short: true },
          { title: 'Used', value: '93%', short: true },
        ],
        mrkdwn_in: ['text', 'pretext'],
        ts: 1700000000,
      },
      { fallback: 'second', text: 'a second attachment' },
    ];
    const result = await client.chat.postMessage({ channel: '#web-api-attachments', attachments });
    assert.equal(result.ok, true);

    const received = await onlyRequest('#web-api-attachments');
    assert.equal(received.channel, '#web-api-attachments');
    assert.deepEqual(received.json.attachments, attachments);
    assert.equal('text' in received.json, false, 'no text was sent, none is invented');
  });

  test('thread_ts stays a string and unfurl_links false becomes a JSON boolean', async () => {
    const result = await client.chat.postMessage({
      channel: '#web-api-thread',
      text: 'a reply in the thread',
      thread_ts: '1700000000.000100',
      unfurl_links: false,
    });
    assert.equal(result.ok, true);

    const received = await onlyRequest('#web-api-thread');
    assert.deepEqual(received.json, {
      channel: '#web-api-thread',
      text: 'a reply in the thread',
      thread_ts: '1700000000.000100',
      unfurl_links: false,
    });
    assert.equal(received.json.unfurl_links, false);  // a boolean, not the string "false"
  });

  // Slack answers an invalid message with HTTP 200 and ok:false, which the SDK
  // turns into a platform error. Any other status is an HTTP error to it, and
  // with its default retryConfig it re-sends those for about 30 minutes.
  test('a message without text, blocks or attachments rejects with no_text', async () => {
    const error = await rejection(client.chat.postMessage({ channel: '#web-api-empty' }));
    assert.equal(error.code, ErrorCode.PlatformError, `${error.code}: ${error.message}`);
    assert.equal(error.data.ok, false);
    assert.equal(error.data.error, 'no_text');
    await nothingQueued('#web-api-empty');
    assert.deepEqual(await slack.requests(), [], 'nothing reaches Slack');
  });
});

describe('WebClient and a full proxy queue', () => {
  let slack;
  let proxy;

  before(async () => {
    slack = await FakeSlack.start();
    // One token, then one per 1000 s: whatever follows the first message
    // waits in the queue, which holds a single message.
    proxy = await SlackProxy.start({
      slackUrl: slack.url,
      queueCapacity: 1,
      apiStages: stage('token_bucket', 'rate = 0.001\nburst = 1\n'),
    });
  });

  after(async () => {
    await proxy?.stop();
    await slack?.stop();
  });

  test('the SDK sees 503 queue_full with Retry-After', async () => {
    const client = webClient(proxy);
    const channel = '#web-api-full';
    assert.equal((await client.chat.postMessage({ channel, text: 'spends the token' })).ok, true);
    await proxy.waitForMetric('slackproxy_requests_succeeded_total', { channel }, 1);
    assert.equal((await client.chat.postMessage({ channel, text: 'fills the queue' })).ok, true);

    const error = await rejection(client.chat.postMessage({ channel, text: 'one too many' }));
    assert.equal(error.code, ErrorCode.HTTPError, `${error.code}: ${error.message}`);
    assert.equal(error.statusCode, 503);
    assert.equal(error.headers['retry-after'], '5');
    assert.equal(error.body.ok, false);
    assert.equal(error.body.error, 'queue_full');
    // The third was refused, not queued: two received, one still waiting on
    // the bucket, so only the first can have reached Slack.
    assert.equal(await proxy.metric('slackproxy_requests_received_total', { channel }), 2);
    assert.equal(await proxy.metric('slackproxy_queue_size'), 1);
    assert.equal((await slack.requests()).length, 1, 'only the first message reached Slack');
  });
});
