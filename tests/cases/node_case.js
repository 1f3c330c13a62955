#!/usr/bin/env node
// A Node Case: asks the relay (fetch, streaming off), writes a correct solution and keeps
// its own state under $HOME, as real agents do. No dependencies.
const fs = require("fs");
const path = require("path");

const GOOD = `import re
import unicodedata


def slugify(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
`;

async function main() {
  const args = process.argv.slice(2);
  const at = (flag) => args[args.indexOf(flag) + 1];
  const workspace = at("--workspace");
  const model = at("--model");
  const base = process.env.OPENAI_BASE_URL.replace(/\/$/, "");
  const resp = await fetch(`${base}/chat/completions`, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${process.env.OPENAI_API_KEY}`,
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "write slugify" }] }),
  });
  console.log(`node case: relay answered ${resp.status}`);
  await resp.text();
  const state = path.join(process.env.HOME, ".config", "node-agent");
  fs.mkdirSync(state, { recursive: true });
  fs.writeFileSync(path.join(state, "state.json"),
                   JSON.stringify({ home: process.env.HOME, calls: 1 }));
  fs.writeFileSync(path.join(workspace, "slugify.py"), GOOD);
  console.log("node case: wrote slugify.py");
  return resp.ok ? 0 : 3;
}

main().then((code) => process.exit(code), (err) => {
  console.error(`node case: ${err}`);
  process.exit(1);
});
