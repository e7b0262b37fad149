// A user's session in a real browser (Debian's Chromium, headless, driven by
// playwright-core; no browser is ever downloaded): log in at the OpenID Connect
// provider's page, fill the spawn form, watch the progress page, use JupyterLab
// (open a notebook, run a cell, read its output), stop the server from the hub's home
// page. A screenshot of every step goes to `shots`.
//
// Usage: node browser.mjs PLAN.json. PLAN: {hub_url, user, password, form: {name: value},
// shots, chromium, timeout_ms, steps: ["login", "spawn", "lab", "notebook", "stop"]}.
// Prints one JSON line per step on stdout ({step, ok, ms, ...details}); exits 1 on
// the first failed step (after a screenshot named `<step>-FAILED.png`).
import fs from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';

const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const timeout = plan.timeout_ms ?? 120000;
fs.mkdirSync(plan.shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: plan.chromium ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
const page = await context.newPage();
page.setDefaultTimeout(timeout);
let counter = 0;

async function shot(name) {
  counter += 1;
  const file = path.join(plan.shots, `${String(counter).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

function report(step, fields) {
  process.stdout.write(`${JSON.stringify({ step, ...fields })}\n`);
}

const steps = {
  // The hub's login page -> the provider's login form -> consent -> back at the hub.
  async login() {
    await page.goto(`${plan.hub_url}/hub/login`);
    const shots = [await shot('hub-login')];
    await page.locator('a[href*="oauth_login"]').first().click();
    await page.locator('input[name="login"]').waitFor();
    await page.fill('input[name="login"]', plan.user);
    await page.fill('input[name="password"]', plan.password);
    shots.push(await shot('provider-login'));
    await page.locator('button[type="submit"]').click();
    // The provider's consent page (first login of this user with this client).
    const consent = page.locator('button[type="submit"]', { hasText: /continue/i });
    await consent.waitFor();
    shots.push(await shot('provider-consent'));
    await consent.click();
    await page.waitForURL((url) => url.href.startsWith(plan.hub_url) && url.pathname.startsWith('/hub/'));
    return { url: page.url(), shots };
  },

  // The spawn form: fill the plan's fields, submit, follow the progress page.
  async spawn() {
    await page.goto(`${plan.hub_url}/hub/spawn`);
    await page.locator('form#spawn_form, form[id*="spawn"]').first().waitFor();
    for (const [name, value] of Object.entries(plan.form ?? {})) {
      const field = page.locator(`[name="${name}"]`).first();
      if ((await field.evaluate((el) => el.tagName)) === 'SELECT') {
        await field.selectOption(value);
      } else {
        await field.fill(value);
      }
    }
    const shots = [await shot('spawn-form')];
    await page.locator('form#spawn_form input[type="submit"], form#spawn_form button[type="submit"]').first().click();
    // The progress page: a bar, the latest message, and the event log (the spawner's
    // events: Slurm's job state among them), opened for the screenshot.
    const messages = [];
    const started = Date.now();
    let shotTaken = false;
    while (!page.url().includes(`/user/${plan.user}/`)) {
      if (Date.now() - started > timeout) {
        throw new Error(`not redirected to the server within ${timeout} ms; events: ${messages.join(' | ')}`);
      }
      const events = await page.$$eval('#progress-log .progress-log-event',
        (els) => els.map((el) => el.textContent.trim())).catch(() => []);
      for (const line of events) {
        if (line && !messages.includes(line)) messages.push(line);
      }
      if (!shotTaken && events.some((line) => /Job \d+ (queued|running)/.test(line))) {
        await page.locator('#progress-details').evaluate((el) => { el.open = true; }).catch(() => {});
        shots.push(await shot('spawn-progress'));
        shotTaken = true;
      }
      await page.waitForTimeout(200);
    }
    return { url: page.url(), progress: messages, shots };
  },

  // JupyterLab's launcher, reached through the proxy (`?reset`: a fresh workspace, not
  // the layout a previous session left in the user's home).
  async lab() {
    await page.goto(`${plan.hub_url}/user/${plan.user}/lab?reset`);
    await page.locator('.jp-Launcher').first().waitFor();
    // JupyterLab asks whether to fetch news: say no (also keeps the screenshots clean).
    await page.locator('.jp-Notification-Toast button', { hasText: /^No$/ }).first()
      .click({ timeout: 5000 }).catch(() => {});
    return { url: page.url(), shots: [await shot('lab-launcher')] };
  },

  // A new notebook: wait for its kernel, run one cell, read its output.
  async notebook() {
    await page.locator('.jp-LauncherCard[data-category="Notebook"]').first().click();
    const editor = page.locator('.jp-NotebookPanel .jp-Cell .jp-InputArea-editor').first();
    await editor.waitFor();
    await page.locator('#jp-main-statusbar', { hasText: /\| Idle/ }).waitFor();
    await editor.click();
    // In the singleuser container, Podman's /run/.containerenv exists.
    await page.keyboard.type('import os, sys; print("answer", 6 * 7, os.path.exists("/run/.containerenv"), sys.prefix)');
    const output = page.locator('.jp-NotebookPanel .jp-OutputArea-output').first();
    // Ctrl+Enter runs the cell in place; a request sent while the kernel's websocket
    // was still settling can be lost, so it is sent again (at most 3 times, 20 s apart).
    for (let attempt = 1; ; attempt += 1) {
      await page.keyboard.press('Control+Enter');
      try {
        await output.waitFor({ timeout: 20000 });
        break;
      } catch (error) {
        if (attempt >= 3) throw error;
        await editor.click();
      }
    }
    const text = (await output.innerText()).trim();
    await page.locator('.jp-Notification-Toast button', { hasText: /^No$/ }).first()
      .click({ timeout: 2000 }).catch(() => {});
    return { output: text, shots: [await shot('notebook-cell')] };
  },

  // The hub's home page: stop the server, wait until it offers to start again.
  async stop() {
    await page.goto(`${plan.hub_url}/hub/home`);
    const stop = page.locator('#stop');
    await stop.waitFor();
    const shots = [await shot('hub-home-running')];
    await stop.click();
    await stop.waitFor({ state: 'hidden' });
    await page.locator('#start', { hasText: 'Start My Server' }).waitFor();
    shots.push(await shot('hub-home-stopped'));
    return { shots };
  },
};

let failed = false;
for (const name of plan.steps) {
  const t0 = Date.now();
  try {
    const details = await steps[name]();
    report(name, { ok: true, ms: Date.now() - t0, ...details });
  } catch (error) {
    failed = true;
    let failure = null;
    try {
      failure = path.join(plan.shots, `${name}-FAILED.png`);
      await page.screenshot({ path: failure });
    } catch {
      failure = null;
    }
    report(name, { ok: false, ms: Date.now() - t0, error: String(error), url: page.url(), shot: failure });
    break;
  }
}
await browser.close();
process.exit(failed ? 1 : 0);
