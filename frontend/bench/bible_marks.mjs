// The story bible marks scan: run from frontend/ with `node bench/bible_marks.mjs` (see docs/browser.md).
// The marks' scan: 2,000 entries (each a two-word name and an alias) over the visible part of a text.
const {buildMatcher} = await import(process.argv[2] ? new URL(process.argv[2], `file://${process.cwd()}/`).href : "../src/bible.js");
const entries = [];
for (let i = 0; i < 2000; i++) entries.push({slug: `e${i}`, name: `Name${i} Person`, aliases: [`alias${i}`]});
const m = buildMatcher(entries);
const words = ["the", "sea", "alias12", "name5 person", "harbour", "Mara", "quay", "and", "Name1999 Person"];
let text = "";
while (text.length < 200000) text += words[Math.floor(Math.random() * words.length)] + " ";
for (const n of [200000, 5000]) {
  const t = text.slice(0, n);
  let best = 1e9, count = 0;
  for (let k = 0; k < 5; k++) {
    const s = performance.now(); count = 0;
    for (const x of t.matchAll(m.regex)) { count++; if (!m.entriesFor(x[0]).length) throw new Error(x[0]); }
    best = Math.min(best, performance.now() - s);
  }
  console.log(`${n} chars: ${count} mentions in ${best.toFixed(1)} ms`);
}
