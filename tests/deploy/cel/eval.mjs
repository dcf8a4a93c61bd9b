// Reads JSON [{rule, self}] on stdin; prints JSON [{ok: bool} | {error: string}] — each rule
// compiled and evaluated by @bufbuild/cel (a conformant CEL implementation) with `self` bound.
// JSON objects become CEL maps, integers CEL ints (BigInt), as the Kubernetes apiserver binds
// integer fields.
import { run } from "@bufbuild/cel";

function toCel(v) {
  if (Array.isArray(v)) return v.map(toCel);
  if (v !== null && typeof v === "object") {
    return new Map(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
  }
  if (typeof v === "number" && Number.isInteger(v)) return BigInt(v);
  return v;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(({ rule, self }) => {
    try {
      const r = run(rule, { self: toCel(self) });
      if (typeof r !== "boolean") return { error: "rule did not return a bool: " + String(r) };
      return { ok: r };
    } catch (e) {
      return { error: String(e && e.message ? e.message : e) };
    }
  });
  process.stdout.write(JSON.stringify(out));
});
