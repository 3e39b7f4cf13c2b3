/** Serves a test app over real HTTP on a free loopback port (@hono/node-server, as src/entry/node.ts does). */
import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import type { App } from '../../src/app';

export async function listen(app: App): Promise<{ base: string; close: () => Promise<void> }> {
  return new Promise((resolveListen) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => {
      resolveListen({
        base: `http://127.0.0.1:${info.port}`,
        close: () =>
          new Promise<void>((r) => {
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
            server.close(() => r());
          }),
      });
    });
  });
}
