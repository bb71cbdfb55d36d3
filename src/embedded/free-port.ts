import net from 'node:net';

/**
 * Ask the kernel for a currently unused TCP port on `host` (bind to port 0, read it, close).
 *
 * There is an unavoidable race between closing the probe socket and the caller binding the
 * port; callers that start a server on it should retry with a new port on EADDRINUSE.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: could not determine the bound port'));
        return;
      }
      const { port } = addr;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
