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

    const [received, ...rest] = await slack.waitForRequests(1);
    assert.deepEqual(rest, [], 'exactly one message reaches Slack');
    assert.equal(received.path, '/api/chat.postMessage');
    assert.equal(received.channel, WEBHOOK_CHANNEL);
    assert.equal(received.authorization_present, true);
    assert.equal(received.json.channel, WEBHOOK_CHANNEL);
    assert.equal(received.json.text, 'Build failed');
    assert.deepEqual(received.json.blocks, blocks);
  });

  test('a payload without text or blocks gets 400 and the plain-text code no_text', async () => {
    const error = await rejection(webhook.send({ username: 'nobody' }));
    assert.equal(error.code, ErrorCode.HTTPError, `${error.code}: ${error.message}`);
    assert.equal(error.statusCode, 400);
    assert.equal(error.body, 'no_text');
    assert.deepEqual(await slack.requests(), [], 'nothing reaches Slack');
  });
});
