import { createRequire } from "module";
import fs from "fs";
const require = createRequire(import.meta.url);
const dompurify = (await import("/tmp/corpus/expect.mjs")).default;
const items = require("/tmp/corpus/items.js");
const payloads = require("/tmp/corpus/payloads.js");
const out = [];
dompurify.forEach((v, i) => out.push({ source: "dompurify", id: `dompurify-${i + 1}`, title: v.title, payload: v.payload }));
for (const item of items) {
  const data = item.data.replace(/%([a-z0-9_]+)%/g, (m, k) => (k in payloads ? payloads[k] : m));
  out.push({ source: "h5sc", id: `h5sc-${item.id}`, title: item.name.en, payload: data });
}
const lines = fs.readFileSync("/tmp/corpus/xss.txt", "utf8").split("\n");
let i = 0, n = 0;
while (i < lines.length) {
  if (lines[i] === ".") {
    const start = ++i; while (lines[i] !== ".") i++;
    const input = lines.slice(start, i).join("\n") + "\n";
    i++; while (lines[i] !== ".") i++; i++;
    out.push({ source: "markdown-it", id: `markdown-it-xss-${++n}`, title: "markdown-it fixtures/xss.txt", payload: input });
  } else i++;
}
fs.writeFileSync("/tmp/corpus/vectors.json", JSON.stringify(out, null, 1) + "\n");
console.log(out.length, out.filter(v=>v.source=="markdown-it").length);
