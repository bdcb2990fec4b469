/**
 * CPU seconds of a bench's clients and of the Dovecot instance serving them,
 * read from /proc (Linux), the machine's busy and idle time, and the mail
 * user that owns seeded Maildirs. Shared by bench/archive.ts,
 * bench/migrate.ts and bench/relay.ts.
 */
import { readdir, readFile } from 'node:fs/promises';

interface ProcessTimes {
  ppid: number;
  /** Its own user + system CPU seconds. */
  own: number;
  /** User + system CPU seconds of its children it waited for. */
  reaped: number;
}

/** A process's CPU times from /proc (Linux, USER_HZ = 100 ticks per second). */
export async function processTimes(pid: number | 'self'): Promise<ProcessTimes> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    ppid: Number(f[1]),
    own: (Number(f[11]) + Number(f[12])) / 100,
    reaped: (Number(f[13]) + Number(f[14])) / 100,
  };
}

/** CPU seconds of this process's waited-for children. */
export async function childrenCpuSeconds(): Promise<number> {
  return (await processTimes('self')).reaped;
}

/** The pid of the Dovecot master started with `configFile`. */
export function dovecotMaster(configFile: string): Promise<number> {
  return serverMaster('dovecot', configFile);
}

/**
 * The pid of the Postfix master started with `-c configDir` (its children:
 * smtpd, cleanup, qmgr, lmtp, trivial-rewrite, tlsmgr, …).
 */
export function postfixMaster(configDir: string): Promise<number> {
  return serverMaster('postfix', configDir);
}

/** The pid of the process whose command line holds `name` and has `argument` as one argument. */
async function serverMaster(name: string, argument: string): Promise<number> {
  for (const entry of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').includes(argument) && cmdline.includes(name)) {
      return Number(entry);
    }
  }
  throw new Error(`no ${name} master runs with ${argument}`);
}

/**
 * CPU seconds used so far by a Dovecot instance: the master's own and its
 * reaped children's times, plus those of its children still running.
 */
export async function serverCpuSeconds(master: number): Promise<number> {
  let seconds = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const times = await processTimes(pid);
      if (pid === master) seconds += times.own + times.reaped;
      else if (times.ppid === master) seconds += times.own;
    } catch {
      // The process ended meanwhile.
    }
  }
  return seconds;
}

/** CPU seconds of the whole machine so far, all cores (/proc/stat's first line). */
export interface MachineTimes {
  busy: number;
  /** idle + iowait: time no process wanted a core. */
  idle: number;
}

export async function machineTimes(): Promise<MachineTimes> {
  const stat = await readFile('/proc/stat', 'utf8');
  // cpu user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const ticks = (stat.split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  const total = ticks.reduce((sum, t) => sum + t, 0);
  return { busy: (total - idle) / 100, idle: idle / 100 };
}

export function ownCpuSeconds(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

export async function mailUser(): Promise<[number, number]> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  const fields = passwd
    .split('\n')
    .find((l) => l.startsWith('mail:'))
    ?.split(':');
  if (!fields) throw new Error('no mail user in /etc/passwd');
  return [Number(fields[2]), Number(fields[3])];
}
