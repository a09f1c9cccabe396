/**
 * Waits for `work`, but at most `ms`: a stop must not hang on an etcd that is gone, nor a new
 * campaign on a lost term's stuck job. True when `work` settled in time (either way).
 */
export async function atMost(ms: number, work: Promise<unknown> | undefined): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const done = Promise.resolve(work).then(() => { settled = true; }, () => { settled = true; });
  await Promise.race([done, new Promise((r) => { timer = setTimeout(r, ms); })]);
  clearTimeout(timer);
  return settled;
}
