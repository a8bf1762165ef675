// The status page (GET /status on the metrics listener) in Debian's
// Chromium, headless, driven by playwright-core: it must show a backlog the
// test makes, work under its own Content-Security-Policy without a console
// error, fetch nothing from another origin, fit a 375 px wide phone, and
// replay a dead letter with the admin key typed into it, which the fake
// Slack must then receive. The key must never reach the URL, a cookie,
// storage, the DOM or the proxy's log.
//
// STATUS_SCREENSHOT=<file.png> also saves the page with that backlog (how
// docs/images/status-page.png is made; see README.md, "Status page").
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const { after, before, describe, test } = require('node:test');
const { chromium } = require('playwright-core');

const { FakeSlack, SlackProxy, stage, waitFor } = require('./harness');

const ADMIN_KEY = 'status-page-admin-key-7f3a9c2e';
// A countdown as the page writes it: "12 s left", "1 min 39 s left".
const LEFT = String.raw`(\d+ min )?\d+ s left`;

// Debian's chromium package (scripts/install-deps.sh), or another Chromium
// named by CHROMIUM_BIN. Like SP_REQUIRE_TOOL in the C++ tests: missing,
// the test fails under SLACK_PROXY_REQUIRE_ALL=1 (scripts/test.sh, CI) and
// is skipped elsewhere.
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const chromiumMissing = !fs.existsSync(CHROMIUM)
  && `${CHROMIUM} not found: scripts/install-deps.sh installs Debian's chromium package`;
if (chromiumMissing && process.env.SLACK_PROXY_REQUIRE_ALL === '1') throw new Error(chromiumMissing);

async function post(proxy, channel, text) {
  const reply = await fetch(proxy.url('/api/chat.postMessage'), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, text }),
  });
  assert.equal(reply.status, 200, `posting to ${channel}`);
}

async function statusJson(proxy) {
  const reply = await fetch(proxy.metricsUrl('/status.json'),
    { headers: { Authorization: `Bearer ${ADMIN_KEY}` } });
  assert.equal(reply.status, 200, 'GET /status.json');
  return reply.json();
}

// A page that records every console error, uncaught exception and request
// to another origin, for the test to assert there were none.
async function openPage(browser, proxy, viewport) {
  const page = await browser.newPage({ viewport });
  const origin = new URL(proxy.metricsUrl('/')).origin;
  const problems = { console: [], page: [], foreign: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') problems.console.push({ text: m.text(), url: m.location().url });
  });
  page.on('pageerror', (e) => problems.page.push(e.message));
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.protocol !== 'data:' && url.origin !== origin) problems.foreign.push(r.url());
  });
  await page.goto(proxy.metricsUrl('/status'));
  return { page, problems };
}

// The table row of section `sectionId` whose text has `text`.
function row(page, sectionId, text) {
  return page.locator(`#${sectionId} tbody tr`, { hasText: text });
}

// The key in none of the places it must never be: asserted from inside the page.
async function assertKeyNowhere(page, proxy) {
  assert.ok(!page.url().includes(ADMIN_KEY), 'not in the URL');
  const where = await page.evaluate(() => ({
    cookie: document.cookie,
    local: JSON.stringify(Object.entries(localStorage)),
    session: JSON.stringify(Object.entries(sessionStorage)),
    html: document.documentElement.outerHTML,
    field: document.getElementById('key').value,
  }));
  for (const [place, text] of Object.entries(where)) {
    assert.ok(!text.includes(ADMIN_KEY), `the admin key is not in ${place}`);
  }
  assert.ok(!proxy.log.includes(ADMIN_KEY), "the admin key is not in the proxy's log");
}

describe('the status page in headless Chromium', { skip: chromiumMissing }, () => {
  let browser;

  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  });
  after(async () => { await browser?.close(); });

  describe('with a backlog, a 429 pause, a parked channel and a dead letter', () => {
    let slack;
    let proxy;

    before(async () => {
      slack = await FakeSlack.start();
      proxy = await SlackProxy.start({
        slackUrl: slack.url,
        // Two messages a channel at once, then one every 100 s: what is
        // posted past two stays queued for the whole test.
        apiStages: stage('token_bucket', 'key = "channel"\nrate = 0.01\nburst = 2\njitter = "0ms"\n')
          + stage('deny_list'),
        // A 429 pauses its channel only, not the others of its workspace.
        apiSinkSettings: 'rate_limit_scope = "channel"\n',
        env: { SLACK_PROXY_ADMIN_KEY: ADMIN_KEY },
      });
      // #old-team does not exist (once): its message becomes a dead letter
      // and the deny-list parks the channel. #ci-builds gets a 429 asking
      // for a minute's pause.
      await slack.enqueue({ error: 'channel_not_found', channel: '#old-team' });
      await slack.enqueue({ status: 429, retry_after: 60, channel: '#ci-builds' });
      await post(proxy, '#old-team', 'nightly report');
      await post(proxy, '#ci-builds', 'build 1812 passed');
      await post(proxy, '#ci-builds', 'build 1813 passed');
      for (let i = 1; i <= 6; ++i) await post(proxy, '#alerts-prod', `disk 9${i}% full on db-1`);
      for (let i = 1; i <= 3; ++i) await post(proxy, '#deploys', `api v2.4.${i} is live`);
      // What the page must show, once the proxy says so itself.
      await waitFor('the backlog, the pause, the parked channel and the dead letter in /status.json',
        async () => {
          const s = await statusJson(proxy);
          const lane = (channel) => s.lanes.shown.find((l) => l.channel === channel);
          return lane('#alerts-prod')?.queued === 4 && lane('#alerts-prod').reason === 'rate_limit'
            && lane('#deploys')?.queued === 1
            && ['pause_after_429', 'pause_channel'].includes(lane('#ci-builds')?.reason)
            && s.parked.some((p) => p.channel === '#old-team')
            && s.dead_letters.dead_letters.some((d) => d.channel === '#old-team');
        });
    });

    after(async () => {
      await proxy?.stop();
      await slack?.stop();
    });

    test('shows them, and a replay clicked in the page delivers the dead letter', async () => {
      const { page, problems } = await openPage(browser, proxy, { width: 1280, height: 900 });

      // The lane waiting for its bucket: 6 posted, 2 sent, 4 queued.
      const backlog = row(page, 'lanes', '#alerts-prod');
      await backlog.waitFor();
      const cells = (await backlog.locator('td').allInnerTexts()).map((t) => t.trim());
      assert.equal(cells[2], '#alerts-prod');
      assert.equal(cells[3], '4', 'its queued count');
      assert.match(cells[5], /waiting/);
      assert.match(cells[5], new RegExp(String.raw`its rate limit \(bucket empty\), ${LEFT}`));
      assert.match(await row(page, 'lanes', '#ci-builds').innerText(), new RegExp(`429 pause.*, ${LEFT}`));
      assert.match(await row(page, 'parked', '#old-team').innerText(),
        new RegExp(String.raw`channel_not_found\s+${LEFT}`));
      const recent = (await row(page, 'recent', '#alerts-prod').locator('td').allInnerTexts())
        .map((t) => t.trim());
      assert.deepEqual(recent.slice(2), ['#alerts-prod', '2', '0'], 'its 2 deliveries, no failure');

      // Dead letters' details need the key: without it, the page says so.
      assert.match(await page.locator('#dead').innerText(), /Enter the admin key/);

      await page.fill('#key', ADMIN_KEY);
      await page.getByRole('button', { name: 'Use key' }).click();
      await page.getByText('key accepted').waitFor();
      const letter = row(page, 'dead', '#old-team');
      await letter.waitFor();
      assert.match(await letter.innerText(), /channel_not_found/);
      const replay = letter.getByRole('button', { name: /^Replay/ });
      assert.equal(await replay.isDisabled(), false, 'the key enables it');

      if (process.env.STATUS_SCREENSHOT) {
        // A backlog a few seconds old reads like one; the page shows it
        // after its next refresh.
        await waitFor('the oldest message to be 10 s old', async () =>
          (await statusJson(proxy)).queue.oldest_age_seconds >= 10, 30_000);
        await page.getByText(/^1\d s$/).first().waitFor({ timeout: 10_000 });
        await page.screenshot({ path: process.env.STATUS_SCREENSHOT, fullPage: true });
      }

      const sent = (await slack.requests()).filter((r) => r.channel === '#old-team').length;
      assert.equal(sent, 1, 'the fake refused the first send');
      await replay.click();
      // Delivered, not just accepted: the fake received it again and the
      // proxy counted it delivered; the page no longer lists it.
      await waitFor('the replayed message at the fake Slack', async () =>
        (await slack.requests()).filter((r) => r.channel === '#old-team').length === 2);
      await proxy.waitForMetric('slackproxy_requests_succeeded_total', { channel: '#old-team' }, 1);
      await page.getByText(/Replayed .* \(back in the queue\)/).waitFor();
      await letter.waitFor({ state: 'detached' });

      await assertKeyNowhere(page, proxy);

      // A phone: nothing wider than the viewport.
      await page.setViewportSize({ width: 375, height: 800 });
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 375, `the page is ${width} px wide at a 375 px viewport`);
      assert.equal(await row(page, 'lanes', '#alerts-prod').isVisible(), true);

      assert.deepEqual(problems, { console: [], page: [], foreign: [] });
      await page.close();
    });
  });

  describe('with [admin] status_public = false', () => {
    let slack;
    let proxy;

    before(async () => {
      slack = await FakeSlack.start();
      proxy = await SlackProxy.start({
        slackUrl: slack.url,
        adminSettings: 'status_public = false\n',
        env: { SLACK_PROXY_ADMIN_KEY: ADMIN_KEY },
      });
    });

    after(async () => {
      await proxy?.stop();
      await slack?.stop();
    });

    test('asks for the key, refreshes itself, shows what callers named as text', async () => {
      const { page, problems } = await openPage(browser, proxy, { width: 375, height: 800 });
      await page.getByText('This status needs the admin key').waitFor();
      assert.equal(await page.locator('#q-size').innerText(), '–', 'nothing shown without the key');

      await page.fill('#key', ADMIN_KEY);
      await page.keyboard.press('Enter');
      await page.getByText('Nothing queued.').waitFor();
      assert.equal(await page.getByText('This status needs the admin key').count(), 0);

      // Posted after the page loaded: its next refresh must show it. A
      // channel name is the caller's: it must show as these characters.
      const hostile = '#x"><img src=x id=injected><script>window.injected=1</script>';
      await post(proxy, hostile, 'hello');
      await proxy.waitSettled(hostile, 1);
      const shown = row(page, 'recent', hostile);
      await shown.waitFor();
      assert.match(await shown.innerText(), /#x"><img src=x id=injected><script>window\.injected=1<\/script>/);
      assert.equal(await page.locator('#injected, main img').count(), 0, 'no element from the name');
      assert.equal(await page.evaluate(() => window.injected), undefined, 'no script from the name');

      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 375, `the page is ${width} px wide at a 375 px viewport`);
      await assertKeyNowhere(page, proxy);

      // Chromium reports each 401 as a console error; those of /status.json
      // before the key was typed are the point of this test, any other is not.
      const unexpected = problems.console.filter((m) => !(m.url.endsWith('/status.json')
        && /status of 401/.test(m.text)));
      assert.ok(problems.console.length > 0, 'the first /status.json was refused');
      assert.deepEqual({ ...problems, console: unexpected }, { console: [], page: [], foreign: [] });
      await page.close();
    });
  });
});
