// Resolve hooks that let Node 20 load dt-sql-parser 4.5.1's ESM build.
//
// dt-sql-parser ships ESM (`export ...`) in dist/*.js without "type": "module" and
// with TypeScript-style specifiers: directory imports (`./parser`) and
// extension-less relative imports (`./common/basicSQL`). Node's ESM resolver
// rejects both (ERR_UNSUPPORTED_DIR_IMPORT / ERR_MODULE_NOT_FOUND). We retry
// such failures with `/index.js` or `.js` appended.

const RELATIVE = /^\.{1,2}(\/|$)/;
const HAS_JS_EXT = /\.(c|m)?js$/;

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const code = err && err.code;
    if (code === 'ERR_UNSUPPORTED_DIR_IMPORT') {
      return nextResolve(specifier.replace(/\/+$/, '') + '/index.js', context);
    }
    if (code === 'ERR_MODULE_NOT_FOUND' && RELATIVE.test(specifier) && !HAS_JS_EXT.test(specifier)) {
      try {
        return await nextResolve(specifier + '.js', context);
      } catch (err2) {
        if (err2 && err2.code === 'ERR_MODULE_NOT_FOUND') {
          return nextResolve(specifier.replace(/\/+$/, '') + '/index.js', context);
        }
        throw err2;
      }
    }
    throw err;
  }
}

// dt-sql-parser's dist files are ESM but their package.json has no "type": tell
// Node up front instead of letting it try CommonJS first (faster, no warnings).
export async function load(url, context, nextLoad) {
  if (url.startsWith('file:') && url.includes('/node_modules/dt-sql-parser/dist/') && url.endsWith('.js')) {
    return nextLoad(url, { ...context, format: 'module' });
  }
  return nextLoad(url, context);
}
