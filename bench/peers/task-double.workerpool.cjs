// Worker script for workerpool: registers the task by name.
const workerpool = require('workerpool');

workerpool.worker({
  double(x) {
    return x * 2;
  },
});
