// Worker task for piscina: the same function as task-double.mjs, as CommonJS.
// piscina's worker require()s its task file first; under Node 20.19+ a
// require() of an ES module goes through Node's loadESMFromCJS, which aborted
// the whole pool topic three times (a Node assertion, not piscina's code;
// see BENCHMARKS.md). A CommonJS file takes the plain require() path.
module.exports = function double(x) {
  return x * 2;
};
