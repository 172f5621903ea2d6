#!/usr/bin/env node
// sqlcheck: validate Spark SQL / HiveQL against the real grammars of dt-sql-parser 4.5.1.
//
//   node tools/sqlcheck/check.mjs --dialect spark|hive FILE...   (FILE "-" = stdin text)
//   node tools/sqlcheck/check.mjs --json [--dialect D] < batch.json
//
// File mode: each file may hold many statements separated by ';' (quotes and comments
// are respected). Each statement is validated on its own; errors are printed as
//   FILE:LINE:COL: statement N: message
// JSON mode: stdin is a JSON array of {dialect, sql}; stdout is a JSON array, same
// order, of {ok, statements, errors:[{statement, line, column, endLine, endColumn, message}]}
// (lines/columns are 1-based and relative to that item's sql; statement is 1-based).
// Exit status: 0 all valid, 1 some statement invalid, 2 usage or input error.
import { register } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

register('./hooks.mjs', import.meta.url);

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.join(HERE, 'node_modules', 'dt-sql-parser', 'dist', 'parser');

// Only the grammar that is asked for is loaded (loading all eight costs seconds).
const DIALECTS = {
  hive: { module: 'hive/index.js', cls: 'HiveSQL' },
  hiveql: { module: 'hive/index.js', cls: 'HiveSQL' },
  spark: { module: 'spark/index.js', cls: 'SparkSQL' },
  sparksql: { module: 'spark/index.js', cls: 'SparkSQL' },
};
const parsers = new Map();

async function parserFor(dialect) {
  const key = String(dialect ?? '').toLowerCase();
  const spec = DIALECTS[key];
  if (!spec) throw new UsageError(`unknown dialect '${dialect}' (expected spark or hive)`);
  if (!parsers.has(spec.cls)) {
    let mod;
    try {
      mod = await import(pathToFileURL(path.join(DIST, spec.module)).href);
    } catch (err) {
      throw new UsageError(
        `cannot load dt-sql-parser (${err.code ?? err.message}); run scripts/install-deps.sh ` +
          `or 'npm ci' in ${HERE}`,
      );
    }
    parsers.set(spec.cls, new mod[spec.cls]());
  }
  return parsers.get(spec.cls);
}

class UsageError extends Error {}

/**
 * Split SQL text into statements on ';' outside quotes and comments.
 * Returns [{start, end, codeStart}] offsets into text; statements holding only
 * whitespace/comments are dropped. Backslash escapes inside quotes (Hive/Spark).
 */
export function splitStatements(text) {
  const out = [];
  let start = 0;
  let codeStart = -1;
  let i = 0;
  const n = text.length;
  const push = (end) => {
    if (codeStart >= 0) out.push({ start, end, codeStart });
    start = end + 1;
    codeStart = -1;
  };
  while (i < n) {
    const c = text[i];
    if (c === '-' && text[i + 1] === '-') {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const close = text.indexOf('*/', i + 2);
      if (codeStart < 0 && text[i + 2] === '+') codeStart = i; // optimizer hint is code
      i = close < 0 ? n : close + 2;
      continue;
    }
    if (c === ';') {
      push(i);
      i++;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') {
      if (codeStart < 0) codeStart = i;
      i++;
      while (i < n && text[i] !== c) i += text[i] === '\\' && c !== '`' ? 2 : 1;
      i++;
      continue;
    }
    if (codeStart < 0 && !/\s/.test(c)) codeStart = i;
    i++;
  }
  push(n);
  return out;
}

function lineStarts(text) {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

function lineColOf(starts, offset) {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, col: offset - starts[lo] + 1 };
}

/** Validate every statement of `text`; positions are 1-based, relative to `text`. */
export async function checkText(dialect, text) {
  const parser = await parserFor(dialect);
  const starts = lineStarts(text);
  const stmts = splitStatements(text);
  const errors = [];
  stmts.forEach((s, idx) => {
    // Validate from the first code character so the parser sees a clean statement.
    const sql = text.slice(s.codeStart, s.end);
    const base = lineColOf(starts, s.codeStart);
    const shift = (line, col) =>
      line === 1 ? { line: base.line, col: base.col + col - 1 } : { line: base.line + line - 1, col };
    for (const e of parser.validate(sql)) {
      const a = shift(e.startLine, e.startColumn);
      const b = shift(e.endLine, e.endColumn);
      errors.push({
        statement: idx + 1,
        statementLine: base.line,
        line: a.line,
        column: a.col,
        endLine: b.line,
        endColumn: b.col,
        message: e.message,
      });
    }
  });
  return { ok: errors.length === 0, statements: stmts.length, errors };
}

function readStdin() {
  try {
    return readFileSync(0, 'utf8');
  } catch (err) {
    if (err.code === 'EAGAIN' || err.code === 'EOF') return '';
    throw err;
  }
}

function parseArgs(argv) {
  const opts = { dialect: null, json: false, quiet: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') opts.json = true;
    else if (a === '-q' || a === '--quiet') opts.quiet = true;
    else if (a === '--dialect' || a === '-d') opts.dialect = argv[++i];
    else if (a.startsWith('--dialect=')) opts.dialect = a.slice('--dialect='.length);
    else if (a === '-h' || a === '--help') opts.help = true;
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}`);
    else opts.files.push(a);
  }
  return opts;
}

const USAGE = `usage: check.mjs --dialect spark|hive FILE...   (FILE '-' reads SQL text from stdin)
       check.mjs --json [--dialect D] < [{"dialect":"hive","sql":"..."}, ...]`;

async function main(argv) {
  const opts = parseArgs(argv);
  if (opts.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (opts.json) {
    let items;
    try {
      items = JSON.parse(readStdin());
    } catch (err) {
      throw new UsageError(`--json: stdin is not valid JSON: ${err.message}`);
    }
    if (!Array.isArray(items)) throw new UsageError('--json: stdin must be a JSON array of {dialect, sql}');
    const results = [];
    for (const item of items) {
      const dialect = item?.dialect ?? opts.dialect;
      const sql = typeof item === 'string' ? item : item?.sql;
      if (typeof sql !== 'string') {
        results.push({ ok: false, statements: 0, errors: [{ statement: 0, line: 0, column: 0, message: 'item has no string "sql"' }] });
        continue;
      }
      try {
        results.push(await checkText(dialect, sql));
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        results.push({ ok: false, statements: 0, errors: [{ statement: 0, line: 0, column: 0, message: err.message }] });
      }
    }
    process.stdout.write(JSON.stringify(results) + '\n');
    return results.every((r) => r.ok) ? 0 : 1;
  }
  if (!opts.dialect) throw new UsageError('--dialect spark|hive is required\n' + USAGE);
  if (opts.files.length === 0) throw new UsageError('no FILE given\n' + USAGE);
  let bad = 0;
  let total = 0;
  for (const file of opts.files) {
    let text;
    try {
      text = file === '-' ? readStdin() : readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`${file}: ${err.message}`);
    }
    const res = await checkText(opts.dialect, text);
    total += res.statements;
    const badStmts = new Set(res.errors.map((e) => e.statement));
    bad += badStmts.size;
    for (const e of res.errors) {
      process.stdout.write(`${file}:${e.line}:${e.column}: statement ${e.statement} (line ${e.statementLine}): ${e.message}\n`);
    }
  }
  if (!opts.quiet) process.stderr.write(`sqlcheck: ${total} statement(s), ${bad} invalid (${opts.dialect})\n`);
  return bad === 0 ? 0 : 1;
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`sqlcheck: ${err instanceof UsageError ? err.message : err.stack}\n`);
    process.exitCode = 2;
  },
);
