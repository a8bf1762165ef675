// The official @slack/webhook IncomingWebhook, unmodified, pointed at the
// proxy's incoming-webhook-style pipeline: it must see exactly what Slack's
// hooks.slack.com answers, and the fake Slack must receive the payload.
'use strict';

const assert = require('node:assert/strict');
const { after, before, beforeEach, describe, test } = require('node:test');
const { ErrorCode, IncomingWebhook } = require('@slack/webhook');

const { FakeSlack, SlackProxy, rejection } = require('./harness');

const WEBHOOK_CHANNEL = '#alerts-webhook';

describe('IncomingWebhook through the proxy', () => {
  let slack;
  let proxy;
  let webhook;

  before(async () => {
    slack = await FakeSlack.start();
    proxy = await SlackProxy.start({ slackUrl: slack.url, webhookChannel: WEBHOOK_CHANNEL });
    webhook = new IncomingWebhook(proxy.url('/services/T0/B0/secret'));
  });

  after(async () => {
    await proxy?.stop();
    await slack?.stop();
  });

  beforeEach(() => slack.reset());

  test('send({text, blocks}) resolves with "ok"; Slack gets it in the bound channel', async () => {
    const blocks = [
      {
        type: 'section',
        text: {
          type: 'mrkdwn',
          text: ':fire: *Build failed* on `main` & <https://ci.example.com|CI>',
        },
      },
      { type: 'context', elements: [{ type: 'plain_text', text: 'ünïcødé "quoted"' }] },
    ];
    const result = await webhook.send({ text: 'Build failed', blocks });
    assert.deepEqual(result, { text: 'ok' });

    // Counted once the proxy has recorded the message's outcome, so a late
    // duplicate would be among what the fake holds.
    await proxy.waitSettled(WEBHOOK_CHANNEL, 1);
    const [received, ...rest] = await slack.requests();
    assert.deepEqual(rest, [], 'exactly one message reaches Slack');
    assert.equal(received.path, '/api/chat.postMessage');
    assert.equal(received.channel, WEBHOOK_CHANNEL);
    assert.equal(received.authorization_present, true);
    assert.equal(received.json.channel, WEBHOOK_CHANNEL);
    assert.equal(received.json.text, 'Build failed');
    assert.deepEqual(received.json.blocks, blocks);
  });

  test('a payload without text or blocks gets 400 and the plain-text code no_text', async () => {
    const received = () => proxy.counter('slackproxy_requests_received_total',
      { channel: WEBHOOK_CHANNEL });
    const receivedBefore = await received();
    const error = await rejection(webhook.send({ username: 'nobody' }));
    assert.equal(error.code, ErrorCode.HTTPError, `${error.code}: ${error.message}`);
    assert.equal(error.statusCode, 400);
    assert.equal(error.body, 'no_text');
    // Not queued: nothing for the channel was counted and nothing is left to send.
    await proxy.waitForMetric('slackproxy_queue_size', {}, 0);
    assert.equal(await received(), receivedBefore, 'the proxy queued nothing');
    assert.deepEqual(await slack.requests(), [], 'nothing reaches Slack');
  });
});
