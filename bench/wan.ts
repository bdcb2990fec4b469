/**
 * The WAN profile the benches share: test/helpers/shaping-proxy.ts with its
 * defaults (15 ms each way, 2 MB/s per connection each way), and how a table
 * names it.
 */
import type { ShapingProxy } from '../test/helpers/shaping-proxy.js';

export function describeWan(proxy: Pick<ShapingProxy, 'delayMs' | 'bytesPerSecond'>): string {
  return `WAN: ${proxy.delayMs} ms each way, ${(proxy.bytesPerSecond / 1024 / 1024).toFixed(1)} MB/s per connection`;
}
