// Drives Kettle's web page (GET /) in headless Chromium through
// playwright-core, against a `kettle serve` that run.sh started with one
// API key. What it checks is listed in README.md beside this file.
//
// Environment (set by run.sh): BROWSER_TEST_BASE (http://127.0.0.1:PORT),
// BROWSER_TEST_LOCAL_BASE (a server in local mode),
// BROWSER_TEST_KEY (the API key), BROWSER_TEST_OUT (folder for
// screenshots), BROWSER_TEST_CHROMIUM (default /usr/bin/chromium),
// BROWSER_TEST_TIMEOUT_S (default 100).
"use strict";

const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const BASE = need("BROWSER_TEST_BASE");
// A second server, in local mode (no keys): the page must work there too,
// its POSTs carrying the page's own Origin, which local mode requires.
const LOCAL_BASE = need("BROWSER_TEST_LOCAL_BASE");
const KEY = need("BROWSER_TEST_KEY");
const OUT = need("BROWSER_TEST_OUT");
const CHROMIUM = process.env.BROWSER_TEST_CHROMIUM || "/usr/bin/chromium";
const TIMEOUT_S = Number(process.env.BROWSER_TEST_TIMEOUT_S || 100);
const SHOTS = 2000;
const started = Date.now();

// Flags this machine needs: without the background-networking ones
// Chromium waits on services it cannot reach.
const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function need(name) {
  const v = process.env[name];
  if (!v) { console.error(`browser test: ${name} is not set (run tests/browser/run.sh)`); process.exit(2); }
  return v;
}

function log(msg) { console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${msg}`); }

class Failure extends Error {}
function check(cond, msg) { if (!cond) throw new Failure(msg); }

// The API, called from Node (not through the page).
async function apiGet(p) {
  const r = await fetch(BASE + p, { headers: { authorization: "Bearer " + KEY } });
  const body = await r.json();
  check(r.ok, `GET ${p} answered ${r.status}: ${JSON.stringify(body)}`);
  return body;
}

async function apiPost(p, body) {
  const r = await fetch(BASE + p, {
    method: "POST", body: JSON.stringify(body),
    headers: { authorization: "Bearer " + KEY, "content-type": "application/json" },
  });
  return { status: r.status, body: await r.json() };
}

async function waitReady() {
  const until = Date.now() + 30000;
  for (;;) {
    try {
      const r = await fetch(BASE + "/readyz");
      if (r.status === 200) return;
    } catch (_) { /* not yet */ }
    check(Date.now() < until, `${BASE}/readyz never answered 200`);
    await new Promise(r => setTimeout(r, 100));
  }
}

async function screenshot(page, name) {
  const file = path.join(OUT, name);
  await page.screenshot({ path: file });
  log(`screenshot ${file}`);
  return file;
}

// Clicks Run and waits until the histogram shows a job other than `prev`;
// returns that job's id.
async function runAndWaitHistogram(page, prev) {
  await page.click("#submit");
  const handle = await page.waitForFunction(prevId => {
    const h = document.getElementById("histogram");
    return h.dataset.state === "ready" && h.dataset.jobId && h.dataset.jobId !== prevId ? h.dataset.jobId : null;
  }, prev, { timeout: 30000 });
  return handle.jsonValue();
}

// The bars as drawn: outcome, count, probability and the drawn widths.
function readBars(page) {
  return page.$$eval("#histogram .bar", bars => bars.map(b => ({
    outcome: b.dataset.outcome,
    count: b.dataset.count === undefined ? null : Number(b.dataset.count),
    probability: b.dataset.probability === undefined ? null : Number(b.dataset.probability),
    countText: b.querySelector(".num").textContent,
    fill: b.querySelector(".fill").getBoundingClientRect().width,
    track: b.querySelector(".track").getBoundingClientRect().width,
  })));
}

// Every bar against the API's counts (and probabilities when asked for),
// the sum against the shots, the drawn lengths against the counts.
async function checkHistogram(page, id, label) {
  const job = await apiGet("/v1/jobs/" + id);
  check(job.status === "completed", `${label}: job ${id} is ${job.status}`);
  const ex = job.result.executions[0];
  const counts = ex.counts;
  const bars = await readBars(page);
  const shown = await page.$eval("#histogram", h => h.dataset.jobId);
  check(shown === id, `${label}: the histogram shows job ${shown}, not ${id}`);
  check(bars.length > 0, `${label}: no bars`);
  const outcomes = new Set(bars.map(b => b.outcome));
  check(outcomes.size === bars.length, `${label}: an outcome has two bars`);
  for (const o of Object.keys(counts)) check(outcomes.has(o), `${label}: outcome ${o} (${counts[o]} shots in the API) has no bar`);
  for (const b of bars) {
    const want = counts[b.outcome] || 0;
    check(b.count === want, `${label}: bar ${b.outcome} says ${b.count}, the API ${want}`);
    check(b.countText.replace(/,/g, "") === String(want), `${label}: bar ${b.outcome} reads "${b.countText}", the API ${want}`);
    if (ex.probabilities) {
      const p = ex.probabilities[b.outcome] || 0;
      check(b.probability !== null && Math.abs(b.probability - p) <= 1e-12,
        `${label}: bar ${b.outcome} has probability ${b.probability}, the API ${p}`);
    }
  }
  const sum = bars.reduce((s, b) => s + b.count, 0);
  check(sum === SHOTS && ex.shots === SHOTS && job.shots === SHOTS, `${label}: bars sum to ${sum}, shots ${ex.shots}, asked ${SHOTS}`);
  // Drawn lengths: proportional to the counts (the longest bar sets the scale).
  const top = bars.reduce((a, b) => (b.count > a.count ? b : a));
  for (const b of bars) {
    const want = b.track * (b.count / SHOTS) / Math.max(top.count / SHOTS, ...bars.map(x => x.probability || 0));
    check(Math.abs(b.fill - want) <= 1.5 || (b.count > 0 && want < 1 && b.fill <= 1.5),
      `${label}: bar ${b.outcome} is ${b.fill.toFixed(1)} px long, expected ${want.toFixed(1)} px`);
  }
  return { job, counts, bars };
}

// The drawing of job `id`'s circuit beside its histogram: the page shows
// the SVG the API draws (GET /v1/jobs/{id}/circuit.svg, fetched here from
// Node too) as an image, in view and not over the histogram, and it holds
// as many gate boxes, measurements and if-frames as the circuit has.
async function checkCircuit(page, id, label, want) {
  await page.waitForFunction(jobId => {
    const c = document.getElementById("drawing");
    const img = document.getElementById("drawing-img");
    return c.dataset.jobId === jobId && c.dataset.state === "ready" && img.complete && img.naturalWidth > 0;
  }, id, { timeout: 20000 });
  const got = await page.evaluate(() => {
    const img = document.getElementById("drawing-img");
    const src = img.getAttribute("src");
    const svg = decodeURIComponent(src.slice(src.indexOf(",") + 1));
    const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
    const root = doc.documentElement;
    const count = sel => doc.querySelectorAll(sel).length;
    const box = r => ({ left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height });
    return {
      scheme: src.slice(0, src.indexOf(",")), parseError: count("parsererror") > 0,
      operations: Number(root.getAttribute("data-operations")), drawn: Number(root.getAttribute("data-drawn")),
      fold: Number(root.getAttribute("data-fold")),
      gates: count("g.op.gate"), measures: count("g.op.measure"), ifs: count("g.op.if"),
      names: Array.from(doc.querySelectorAll("g.op.gate"), g => g.getAttribute("data-name")),
      img: box(img.getBoundingClientRect()), view: box(img.parentElement.getBoundingClientRect()),
      hist: box(document.getElementById("histogram").getBoundingClientRect()),
      panel: box(document.getElementById("job-panel").getBoundingClientRect()),
      note: document.getElementById("drawing-note").textContent,
    };
  });
  check(got.scheme === "data:image/svg+xml;charset=utf-8" && !got.parseError, `${label}: the drawing is ${got.scheme}, parse error ${got.parseError}`);
  for (const k of ["operations", "gates", "measures", "ifs"]) {
    check(got[k] === want[k], `${label}: the drawing has ${got[k]} ${k}, the circuit ${want[k]}`);
  }
  check(got.drawn === want.operations, `${label}: ${got.drawn} of ${got.operations} operations drawn`);
  if (want.names) {
    const names = got.names.slice().sort().join(" "), expected = want.names.slice().sort().join(" ");
    check(names === expected, `${label}: gates drawn ${names}, expected ${expected}`);
  }
  check(got.note.startsWith(String(want.operations) + " operation"), `${label}: the note says "${got.note}"`);
  // In view, inside the result panel, and not over the histogram.
  check(got.view.width > 100 && got.view.height > 40 && got.img.width > 50, `${label}: the drawing is ${got.img.width}x${got.img.height} px`);
  check(got.view.left >= got.panel.left && got.view.right <= got.panel.right + 1 && got.view.top >= got.panel.top,
    `${label}: the drawing is outside the result panel`);
  const apart = got.view.bottom <= got.hist.top + 1 || got.view.right <= got.hist.left + 1;
  check(apart, `${label}: the drawing overlaps the histogram`);
  // The page shows what the API serves for the same fold.
  const r = await fetch(`${BASE}/v1/jobs/${id}/circuit.svg?fold=${got.fold}`, { headers: { authorization: "Bearer " + KEY } });
  const svg = await r.text();
  check(r.status === 200 && r.headers.get("content-type").startsWith("image/svg+xml"), `${label}: the API answered ${r.status} ${r.headers.get("content-type")}`);
  const apiGates = (svg.match(/<g class="op gate"/g) || []).length;
  const apiMeasures = (svg.match(/<g class="op measure"/g) || []).length;
  check(apiGates === got.gates && apiMeasures === got.measures, `${label}: the API's drawing has ${apiGates} gates and ${apiMeasures} measurements, the page's ${got.gates} and ${got.measures}`);
  log(`${label}: circuit drawn beside the histogram (${got.gates} gates, ${got.measures} measurements, ${got.ifs} conditions, fold ${got.fold})`);
}

async function pickAndRun(page, circuit, prev) {
  await page.selectOption("#circuit", circuit);
  await page.fill("#shots", String(SHOTS));
  const id = await runAndWaitHistogram(page, prev);
  log(`${circuit}: job ${id}, histogram drawn`);
  return id;
}

// A program whose line 3 is wrong, with enough lines after it to scroll.
const BAD_PROGRAM = [
  "OPENQASM 3.0;",
  'include "stdgates.inc";',
  "qubit[2] q; bit[2] c; hh q[0];",
  "c = measure q;",
  ...Array.from({ length: 60 }, (_, i) => `// filler line ${i + 5}`),
].join("\n") + "\n";

// Where the error note sits against line 3 of the textarea.
function noteGeometry(page) {
  return page.evaluate(() => {
    const ta = document.getElementById("source");
    const cs = getComputedStyle(ta);
    const lh = parseFloat(cs.lineHeight);
    const tb = ta.getBoundingClientRect();
    const note = document.getElementById("problem-note");
    const nb = note.getBoundingClientRect();
    const gutter = document.querySelector('#gutter-lines div[data-line="3"]');
    return {
      lh, scrollTop: ta.scrollTop,
      lineTop: tb.top + parseFloat(cs.paddingTop) + 2 * lh - ta.scrollTop,
      noteTop: nb.top, noteBottom: nb.bottom, noteLeft: nb.left, noteRight: nb.right,
      taLeft: tb.left, taRight: tb.right,
      gutterTop: gutter.getBoundingClientRect().top, gutterError: gutter.classList.contains("error"),
      noteLine: note.dataset.line, noteText: note.textContent,
      summary: document.getElementById("problem").textContent,
    };
  });
}

function checkNoteOnLine3(g, when) {
  const lineMid = g.lineTop + g.lh / 2;
  const noteMid = (g.noteTop + g.noteBottom) / 2;
  check(g.noteLine === "3", `error note is for line ${g.noteLine}, not 3 (${when})`);
  check(Math.abs(noteMid - lineMid) <= g.lh / 2, `error note is at y=${noteMid.toFixed(1)}, line 3 at y=${lineMid.toFixed(1)} (${when})`);
  check(g.noteLeft >= g.taLeft && g.noteRight <= g.taRight + 1, `error note is outside the editor (${when})`);
  check(g.gutterError && Math.abs(g.gutterTop - g.lineTop) <= 1, `gutter line 3 is not marked or not aligned (${when})`);
}

let currentPage = null;   // for a screenshot when a check fails

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  await waitReady();
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
  try {
    await run(browser);
    await runLocal(browser);
  } catch (err) {
    if (currentPage) await screenshot(currentPage, "failure.png").catch(() => {});
    throw err;
  } finally {
    await browser.close().catch(() => {});
  }
}

async function run(browser) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  currentPage = page;
  page.setDefaultTimeout(20000);
  const origin = new URL(BASE).origin;
  const problems = [];
  page.on("pageerror", e => problems.push("page error: " + e.message));
  page.on("console", m => {
    // Chromium logs every 4xx answer to fetch (the 401 before the key, the
    // 422 of the bad program): expected. Anything else is not.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push("console: " + m.text());
  });
  page.on("request", r => {
    const u = r.url();
    if (!u.startsWith("data:") && new URL(u).origin !== origin) problems.push("request to another origin: " + u);
  });

  // The page, and the key it must ask for.
  const response = await page.goto(BASE + "/");
  check(response.status() === 200, `GET / answered ${response.status()}`);
  await page.waitForSelector("#key-prompt:not([hidden])", { timeout: 10000 });
  log("page loaded; it asks for an API key");
  await page.fill("#api-key", "kt_not_a_key");
  await page.click("#save-key");
  await page.waitForFunction(() => /refused this key/.test(document.getElementById("key-message").textContent), null, { timeout: 10000 });
  check(await page.isVisible("#key-prompt"), "the key prompt went away after a wrong key");
  log("a wrong key is refused in the prompt");
  await page.fill("#api-key", KEY);
  await page.click("#save-key");
  await page.waitForSelector("#key-prompt", { state: "hidden", timeout: 10000 });
  await page.waitForFunction(() => /keys required/.test(document.getElementById("backend-info").textContent));
  const stored = await page.evaluate(() => sessionStorage.getItem("kettle.apiKey"));
  check(stored === KEY, "the key is not kept in sessionStorage");
  check(!page.url().includes(KEY), "the key is in the URL");
  log("key accepted");

  // Bell.
  const bellId = await pickAndRun(page, "qasm3/bell.qasm", null);
  const bell = await checkHistogram(page, bellId, "Bell");
  check(Object.keys(bell.counts).every(o => o === "00" || o === "11"), `Bell gave ${JSON.stringify(bell.counts)}`);
  log(`Bell: ${bell.bars.length} bars equal the API's counts ${JSON.stringify(bell.counts)}`);
  await checkCircuit(page, bellId, "Bell", { operations: 4, gates: 2, measures: 2, ifs: 0, names: ["h", "cx"] });
  const bellPng = await screenshot(page, "bell.png");

  // Grover over 4 qubits: "1101" with probability 0.961319 (circuit's comment).
  const groverId = await pickAndRun(page, "qasm3/grover4.qasm", bellId);
  const grover = await checkHistogram(page, groverId, "Grover");
  const best = grover.bars.reduce((a, b) => (b.count > a.count ? b : a));
  check(best.outcome === "1101" && best.count / SHOTS > 0.93, `Grover's most frequent outcome is ${best.outcome} (${best.count})`);
  check(Math.abs(grover.bars.find(b => b.outcome === "1101").probability - 0.961319) < 1e-6, "Grover: exact probability of 1101 is not 0.961319");
  log(`Grover: ${grover.bars.length} bars equal the API's counts; 1101 has ${best.count}/${SHOTS}`);
  // h q (4); three times the oracle (x, ctrl(3) @ z, x) and the diffuser
  // (4 h, 4 x, ctrl(3) @ z, 4 x, 4 h); c = measure q (4).
  const groverGates = ["h", "h", "h", "h"];
  for (let k = 0; k < 3; k++) {
    groverGates.push("x", "z", "x", ...Array(4).fill("h"), ...Array(4).fill("x"), "z", ...Array(4).fill("x"), ...Array(4).fill("h"));
  }
  await checkCircuit(page, groverId, "Grover", { operations: 68, gates: 64, measures: 4, ifs: 0, names: groverGates });
  const groverPng = await screenshot(page, "grover.png");

  // Teleportation: mid-circuit measurements and two conditions, drawn as
  // frames joined to the bits they read.
  await page.selectOption("#circuit", "qasm3/teleport.qasm");
  await page.fill("#shots", String(SHOTS));
  const teleportId = await runAndWaitHistogram(page, groverId);
  await checkCircuit(page, teleportId, "Teleport",
    { operations: 12, gates: 7, measures: 3, ifs: 2, names: ["ry", "h", "cx", "cx", "h", "x", "z"] });
  // (Its second row holds the two frames: scrolled into view for the picture.)
  await page.$eval("#drawing .circuit-view", v => { v.scrollTop = v.scrollHeight; });
  const circuitPng = await screenshot(page, "circuit.png");

  // A program error on line 3: the server's message beside line 3, also
  // after scrolling the editor.
  const direct = await apiPost("/v1/jobs", { program: { format: "qasm3", source: BAD_PROGRAM }, shots: 10 });
  check(direct.status === 422 && direct.body.line === 3, `the API answered ${direct.status} ${JSON.stringify(direct.body)} for the bad program`);
  await page.fill("#source", BAD_PROGRAM);
  await page.click("#submit");
  await page.waitForSelector('#problem-note[data-line="3"]', { timeout: 10000 });
  let g = await noteGeometry(page);
  check(g.noteText.includes(direct.body.detail), `the note says "${g.noteText}", the API "${direct.body.detail}"`);
  check(g.summary.includes(direct.body.detail) && /line 3\b/.test(g.summary), `the summary says "${g.summary}"`);
  checkNoteOnLine3(g, "unscrolled");
  await page.$eval("#source", ta => { ta.scrollTop = 2.5 * parseFloat(getComputedStyle(ta).lineHeight); });
  await page.waitForFunction(() => {
    const ta = document.getElementById("source");
    return ta.scrollTop > 0 && document.getElementById("bands-inner").style.transform === `translateY(${-ta.scrollTop}px)`;
  });
  g = await noteGeometry(page);
  check(g.scrollTop > 0, "the editor did not scroll");
  checkNoteOnLine3(g, `scrolled by ${g.scrollTop}px`);
  await page.$eval("#source", ta => { ta.scrollTop = 0; });
  await page.waitForFunction(() => document.getElementById("bands-inner").style.transform === "translateY(0px)");
  log(`error on line 3 shown beside line 3 ("${direct.body.detail}"), also when scrolled`);
  const errorPng = await screenshot(page, "error.png");

  // Cancel: a 24-qubit program of ~9,400 gates runs for many seconds even
  // in a release build (a debug build needs minutes).
  const n = 24, layers = 200;
  const lines = ["OPENQASM 3.0;", 'include "stdgates.inc";', `qubit[${n}] q;`, `bit[${n}] c;`];
  for (let l = 0; l < layers; l++) {
    for (let i = 0; i < n; i++) lines.push(`rx(${(0.1 + 0.01 * l).toFixed(2)}) q[${i}];`);
    for (let i = 0; i + 1 < n; i++) lines.push(`cx q[${i}], q[${i + 1}];`);
  }
  lines.push("c = measure q;");
  // (Set as a paste would, in one input event: page.fill inserts 9,400
  // lines through the editing commands, which takes headless Chromium
  // half a minute.)
  await page.$eval("#source", (ta, text) => {
    ta.value = text;
    ta.dispatchEvent(new Event("input", { bubbles: true }));
  }, lines.join("\n") + "\n");
  await page.fill("#shots", "100");
  await page.click("#submit");
  const longId = await (await page.waitForFunction(prev => {
    const p = document.getElementById("job-panel");
    return p.dataset.jobId && p.dataset.jobId !== prev && ["queued", "running"].includes(p.dataset.status) ? p.dataset.jobId : null;
  }, teleportId, { timeout: 20000 })).jsonValue();
  const before = await apiGet("/v1/jobs/" + longId);
  check(!["completed", "failed", "cancelled"].includes(before.status), `the long job already ended (${before.status})`);
  log(`long job ${longId} is ${before.status}; cancelling from the page`);
  const cancelAt = Date.now();
  await page.click("#cancel");
  await page.waitForFunction(id => {
    const p = document.getElementById("job-panel");
    return p.dataset.jobId === id && p.dataset.status === "cancelled";
  }, longId, { timeout: 30000 });
  const after = await apiGet("/v1/jobs/" + longId);
  check(after.status === "cancelled", `the API says the long job is ${after.status}`);
  log(`cancelled in ${((Date.now() - cancelAt) / 1000).toFixed(1)} s (API: ${after.status}${after.error ? ", " + after.error.code : ""})`);

  // The recent-jobs list shows the three jobs with the API's statuses, and
  // a click on Bell's row shows Bell's histogram again.
  const expected = { [bellId]: "completed", [groverId]: "completed", [longId]: "cancelled" };
  await page.waitForFunction(exp => Object.entries(exp).every(([id, status]) => {
    const row = document.querySelector(`#jobs-rows tr[data-job-id="${id}"]`);
    return row && row.dataset.status === status;
  }), expected, { timeout: 15000 });
  const listed = await apiGet("/v1/jobs?limit=20");
  for (const [id, status] of Object.entries(expected)) {
    const j = listed.jobs.find(x => x.id === id);
    check(j && j.status === status, `the API lists job ${id} as ${j && j.status}`);
  }
  const rowCount = await page.$$eval("#jobs-rows tr[data-job-id]", rows => rows.length);
  check(rowCount === listed.jobs.length, `the list has ${rowCount} rows, the API ${listed.jobs.length} jobs`);
  log(`recent jobs: ${rowCount} rows, Bell, Grover and the cancelled job among them`);
  const cancelPng = await screenshot(page, "jobs.png");
  await page.click(`#jobs-rows tr[data-job-id="${bellId}"]`);
  await page.waitForFunction(id => {
    const h = document.getElementById("histogram");
    return h.dataset.jobId === id && h.dataset.state === "ready";
  }, bellId);
  await checkHistogram(page, bellId, "Bell from the list");
  log("Bell's row shows Bell's histogram again");

  check(problems.length === 0, "the page reported:\n  " + problems.join("\n  "));
  await context.close();
  return [bellPng, groverPng, circuitPng, errorPng, cancelPng];
}

// Local mode: no key prompt, and a job submitted from the page runs (a
// server in local mode refuses writes whose Origin is not its own, so this
// fails if the browser's Origin and the server's idea of it disagree).
async function runLocal(browser) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  currentPage = page;
  page.setDefaultTimeout(20000);
  const origins = [];
  page.on("request", r => {
    if (r.method() === "POST") origins.push(r.headerValue("origin"));
  });
  await page.goto(LOCAL_BASE + "/");
  await page.waitForFunction(() => /local mode/.test(document.getElementById("backend-info").textContent));
  check(!(await page.isVisible("#key-prompt")), "the page asks for a key in local mode");
  await page.selectOption("#circuit", "qasm3/bell.qasm");
  await page.fill("#shots", String(SHOTS));
  const id = await runAndWaitHistogram(page, null);
  const r = await fetch(LOCAL_BASE + "/v1/jobs/" + id);
  const job = await r.json();
  check(r.ok && job.status === "completed", `local mode: job ${id} answered ${r.status} ${job.status}`);
  const sent = await Promise.all(origins);
  check(sent.length > 0 && sent.every(o => o === new URL(LOCAL_BASE).origin),
    `local mode: the page's POSTs carried Origin ${JSON.stringify(sent)}`);
  log(`local mode: Bell submitted from the page ran (job ${id}); its POST carried Origin ${sent[0]}`);
  await context.close();
}

const watchdog = setTimeout(() => {
  console.error(`browser test: FAILED: still running after ${TIMEOUT_S} s`);
  process.exit(1);
}, TIMEOUT_S * 1000);

main().then(() => {
  clearTimeout(watchdog);
  log(`browser test: all checks passed (screenshots in ${OUT})`);
}, err => {
  clearTimeout(watchdog);
  console.error(`browser test: FAILED: ${err instanceof Failure ? err.message : err.stack || err}`);
  process.exitCode = 1;
});
