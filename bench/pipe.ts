/**
 * `npm run bench -- pipe`: the foundation's pipe (TUN -> raw IPv6 proto 4 -> TUN through the
 * native addon, test-only forwarder) beside plain kernel IPv4 forwarding over the same
 * namespaces and links, in the same run: small-packet rate at no drop and TCP throughput.
 */
import os from 'node:os';
import { buildPipe, HOSTB } from '../test/lab/pipe.js';
import { iperfServer, pingRtt, printReport, tcpThroughput, udpRateNoDrop, type Report, type Row } from './lib.js';

export async function main(args: string[]): Promise<void> {
  const seconds = Number(args[0] ?? 5);
  const results: Record<string, { tcp: number | null; pps: number | null; rtt: number | null; trials: unknown }> = {};
  for (const mode of ['kernel', 'aplus'] as const) {
    const pipe = await buildPipe('bpipe', mode);
    try {
      await iperfServer(pipe.hostb);
      const rtt = await pingRtt(pipe.hosta, HOSTB);
      const tcp = await tcpThroughput(pipe.hosta, HOSTB, seconds);
      const rate = await udpRateNoDrop(pipe.hosta, HOSTB, { payload: 64, seconds: 2 });
      results[mode] = { tcp, pps: rate.pps, rtt, trials: rate.trials };
      await pipe.stop();
    } finally {
      pipe.lab.destroy();
    }
  }
  const rows: Row[] = [
    { metric: 'TCP throughput (1 stream)', unit: 'bit/s', values: { kernel: results.kernel!.tcp, aplus: results.aplus!.tcp } },
    { metric: 'UDP 64-byte rate at no drop', unit: 'pps', values: { kernel: results.kernel!.pps, aplus: results.aplus!.pps } },
    { metric: 'ping RTT (median)', unit: 'ms', values: { kernel: results.kernel!.rtt, aplus: results.aplus!.rtt } },
  ];
  const report: Report = {
    bench: 'pipe',
    when: new Date().toISOString(),
    host: { cpus: os.cpus().length, kernel: os.release() },
    notes: [
      'no drop = loss <= 0.1% over a 2 s iperf3 UDP trial; the offered rate is doubled from 25 kpps, then bisected',
      'kernel = the same namespaces with IPv4 routed natively over the middle link (no encapsulation)',
      `trials: ${JSON.stringify({ kernel: results.kernel!.trials, aplus: results.aplus!.trials })}`,
    ],
    rows,
  };
  printReport(report, 'kernel');
}
