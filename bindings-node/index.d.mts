// Type declarations of the ES module entry (index.mjs): the same names as the CommonJS entry's
// (index.d.ts), and the whole module as the default export.
/// <reference types="node" />

import * as lb from './index.js'

export * from './index.js'
export default lb
