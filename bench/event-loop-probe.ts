/**
 * Preloaded into the API process by bench/event-loop.ts (`node --import tsx --import <this file> src/entry/node.ts`):
 * records the event-loop delay of the API thread with node:perf_hooks monitorEventLoopDelay, and answers the
 * benchmark over the IPC channel: "reset" starts a measurement, "report" sends its percentiles in milliseconds.
 * Only the main thread measures (engine threads are not the API's event loop).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

export interface EventLoopReport {
  p50: number;
  p99: number;
  max: number;
  mean: number;
  samples: number;
}

if (isMainThread && process.send) {
  const histogram = monitorEventLoopDelay({ resolution: 2 });
  histogram.enable();
  const ms = (ns: number) => ns / 1e6;
  process.on('message', (message) => {
    if (message === 'reset') {
      histogram.reset();
      process.send!('reset');
    } else if (message === 'report') {
      const report: EventLoopReport = {
        p50: ms(histogram.percentile(50)),
        p99: ms(histogram.percentile(99)),
        max: ms(histogram.max),
        mean: ms(histogram.mean),
        samples: histogram.count,
      };
      process.send!(report);
    }
  });
  process.channel?.unref(); // the server, not the channel, keeps the process alive
}
