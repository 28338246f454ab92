//! Threads that do background work (analysis, sinks) run at a lower scheduling priority (nice 10),
//! so that when the cores are busy the request path wins them: monitoring falls behind and sheds
//! load, counted, instead of slowing inference traffic down (SPEC principle 1).

/// The nice value of background threads.
pub const NICE: i32 = 10;

/// Lowers the calling thread's priority. Failing to (a restrictive seccomp profile, say) only
/// loses the preference, so it is logged and otherwise ignored.
pub fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        if let Err(error) = rustix::process::setpriority_process(Some(thread), NICE) {
            tracing::debug!(%error, "cannot lower the priority of a background thread");
        }
    }
}
