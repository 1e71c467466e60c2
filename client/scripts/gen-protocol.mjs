// Generates src/protocol/generated.ts from the JSON Schema catalog in shared/protocol/.
// The catalog is the single definition of every event and request; the client's types are
// derived from it so a change on either side shows up as a type error or a failing drift test.
import { readFileSync, readdirSync, writeFileSync, statSync } from "node:fs";
import { dirname, join, posix, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const CATALOG_DIR = resolve(here, "../../shared/protocol");
export const OUTPUT = resolve(here, "../src/protocol/generated.ts");

function listJson(dir, base = dir) {
  const out = [];
  for (const entry of readdirSync(dir).sort()) {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) {
      if (entry !== "fixtures") out.push(...listJson(full, base));
    } else if (entry.endsWith(".json")) {
      out.push(relative(base, full).split("\\").join("/"));
    }
  }
  return out;
}

function pascal(text) {
  return text
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join("");
}

function defTypeName(file, def) {
  const stem = posix.basename(file, ".json");
  return pascal(stem) + pascal(def);
}

function literal(value) {
  return JSON.stringify(value);
}

function quoteKey(key) {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? key : JSON.stringify(key);
}

function indent(text, by = "  ") {
  return text
    .split("\n")
    .map((line) => (line ? by + line : line))
    .join("\n");
}

class Generator {
  constructor(dir) {
    this.dir = dir;
    this.documents = new Map();
    for (const file of listJson(dir)) {
      this.documents.set(file, JSON.parse(readFileSync(join(dir, file), "utf8")));
    }
  }

  refName(file, ref) {
    const [target, pointer] = ref.split("#");
    const targetFile = target ? posix.normalize(posix.join(posix.dirname(file), target)) : file;
    if (!this.documents.has(targetFile)) throw new Error(`${file}: unresolved $ref ${ref}`);
    const match = /^\/\$defs\/([^/]+)$/.exec(pointer ?? "");
    if (!match) return this.type(targetFile, this.resolvePointer(targetFile, pointer ?? "", ref));
    if (!(match[1] in (this.documents.get(targetFile).$defs ?? {}))) {
      throw new Error(`${file}: unresolved $ref ${ref}`);
    }
    return defTypeName(targetFile, match[1]);
  }

  /** A ref deeper than a named def (e.g. into a def's properties) is inlined. */
  resolvePointer(file, pointer, ref) {
    let node = this.documents.get(file);
    for (const raw of pointer.split("/").slice(1)) {
      const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
      if (node === null || typeof node !== "object" || !(key in node)) {
        throw new Error(`${file}: unresolved $ref ${ref}`);
      }
      node = node[key];
    }
    return node;
  }

  type(file, schema) {
    if (schema === true || schema === undefined || schema === null) return "unknown";
    if (schema === false) return "never";
    if (schema.$ref) return this.refName(file, schema.$ref);
    if ("const" in schema) return literal(schema.const);
    if (schema.enum) return schema.enum.map(literal).join(" | ");
    if (schema.oneOf) return this.union(file, schema.oneOf);
    if (schema.anyOf) return this.union(file, schema.anyOf);
    if (schema.allOf) {
      const { allOf, ...rest } = schema;
      const parts = allOf.map((s) => this.type(file, s)).filter((t) => t !== "unknown");
      const own = this.type(file, rest);
      return [own, ...parts].filter((t) => t !== "unknown").map((t) => `(${t})`).join(" & ") || "unknown";
    }
    const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
    if (types.length === 0) {
      if (schema.properties) return this.object(file, schema);
      return "unknown";
    }
    const parts = types.map((t) => this.single(file, t, schema));
    return parts.length === 1 ? parts[0] : parts.join(" | ");
  }

  union(file, schemas) {
    const parts = schemas.map((s) => this.type(file, s));
    if (parts.includes("unknown")) return "unknown";
    return parts.map((t) => `(${t})`).join(" | ");
  }

  single(file, type, schema) {
    switch (type) {
      case "string":
        return "string";
      case "integer":
      case "number":
        return "number";
      case "boolean":
        return "boolean";
      case "null":
        return "null";
      case "array":
        if (Array.isArray(schema.prefixItems)) {
          return `[${schema.prefixItems.map((s) => this.type(file, s)).join(", ")}]`;
        }
        return `Array<${this.type(file, schema.items)}>`;
      case "object":
        return this.object(file, schema);
      default:
        throw new Error(`${file}: unknown JSON Schema type ${type}`);
    }
  }

  object(file, schema) {
    const required = new Set(schema.required ?? []);
    const lines = [];
    for (const [key, sub] of Object.entries(schema.properties ?? {})) {
      lines.push(`${quoteKey(key)}${required.has(key) ? "" : "?"}: ${this.type(file, sub)};`);
    }
    const extra = schema.additionalProperties;
    if (extra !== false) {
      const value = lines.length === 0 && extra && extra !== true ? this.type(file, extra) : "unknown";
      lines.push(`[key: string]: ${value};`);
    }
    if (lines.length === 0) return "Record<string, never>";
    return `{\n${indent(lines.join("\n"))}\n}`;
  }

  generate() {
    const out = [
      "// Generated by client/scripts/gen-protocol.mjs from shared/protocol/. Do not edit:",
      "// run `npm run gen` after changing the catalog.",
      "/* eslint-disable */",
      "",
    ];
    const events = [];
    const requests = [];
    let errors = [];
    for (const [file, doc] of this.documents) {
      for (const [name, def] of Object.entries(doc.$defs ?? {})) {
        out.push(`export type ${defTypeName(file, name)} = ${this.type(file, def)};`, "");
      }
      for (const [name, spec] of Object.entries(doc.events ?? {})) events.push([file, name, spec]);
      for (const [name, spec] of Object.entries(doc.requests ?? {})) requests.push([file, name, spec]);
      if (doc.errors) errors = Object.keys(doc.errors);
    }
    events.sort((a, b) => a[1].localeCompare(b[1]));
    requests.sort((a, b) => a[1].localeCompare(b[1]));

    out.push(`export type ErrorCode = ${errors.map(literal).join(" | ") || "never"};`, "");
    out.push(`export const ERROR_CODES = ${JSON.stringify(errors)} as const;`, "");

    const payloads = events.map(([f, n, s]) => `${literal(n)}: ${this.type(f, s.payload)};`);
    out.push(`export interface EventPayloads {\n${indent(payloads.join("\n"))}\n}`, "");
    const acks = events
      .filter(([, , s]) => "ack" in s)
      .map(([f, n, s]) => `${literal(n)}: ${this.type(f, s.ack)};`);
    out.push(`export interface EventAcks {\n${indent(acks.join("\n"))}\n}`, "");
    const toServer = events.filter(([, , s]) => s.direction !== "server->client").map(([, n]) => literal(n));
    const toClient = events.filter(([, , s]) => s.direction !== "client->server").map(([, n]) => literal(n));
    out.push(`export type ClientEventName = ${toServer.join(" | ") || "never"};`, "");
    out.push(`export type ServerEventName = ${toClient.join(" | ") || "never"};`, "");
    const volatile = events.filter(([, , s]) => s.volatile).map(([, n]) => n);
    out.push(`export const VOLATILE_EVENTS = ${JSON.stringify(volatile)} as const;`, "");

    const bodies = requests
      .filter(([, , s]) => "body" in s)
      .map(([f, n, s]) => `${literal(n)}: ${this.type(f, s.body)};`);
    out.push(`export interface RequestBodies {\n${indent(bodies.join("\n"))}\n}`, "");
    const responses = requests
      .filter(([, , s]) => "response" in s)
      .map(([f, n, s]) => `${literal(n)}: ${this.type(f, s.response)};`);
    out.push(`export interface ResponseBodies {\n${indent(responses.join("\n"))}\n}`, "");
    const routes = requests.map(
      ([, n, s]) => `${literal(n)}: { method: ${literal(s.method)}, path: ${literal(s.path)} },`,
    );
    out.push(`export const REQUESTS = {\n${indent(routes.join("\n"))}\n} as const;`, "");
    out.push("export type RequestName = keyof typeof REQUESTS;", "");
    return out.join("\n");
  }
}

export function generate(dir = CATALOG_DIR) {
  return new Generator(dir).generate();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(OUTPUT, generate());
  console.log(`wrote ${relative(process.cwd(), OUTPUT)}`);
}
