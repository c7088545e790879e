//! Workers as EAL lcores: threads EAL created and pinned (`--lcores`), on which work is
//! launched with `rte_eal_remote_launch`. Unlike threads registered with
//! `rte_thread_register`, which makes EAL turn its multi-process channel off, EAL lcores leave
//! it on, so that secondary processes (`dpdk-dumpcap`, `dpdk-proc-info`) can attach.
//!
//! The work may borrow from the caller's stack, as with `std::thread::scope`: [`lcore_scope`]
//! waits for every lcore it launched before it returns, even when its body panics.

use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::sync::Mutex;

use crate::error::DpdkError;
use crate::ffi;
use crate::Eal;

type Work<'scope> = Box<dyn FnOnce() + Send + 'scope>;

/// Where lcores are launched; see [`lcore_scope`].
pub struct LcoreScope<'scope, 'env: 'scope> {
    launched: Mutex<Vec<u32>>,
    // Invariant in both lifetimes, as std::thread::Scope is.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// Runs `body`, in which work can be launched on worker lcores, then waits for all of it.
pub fn lcore_scope<'env, T>(
    _eal: &Eal,
    body: impl for<'scope> FnOnce(&'scope LcoreScope<'scope, 'env>) -> T,
) -> T {
    let scope = LcoreScope {
        launched: Mutex::new(Vec::new()),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&scope)));
    scope.wait_all();
    match result {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

impl<'scope> LcoreScope<'scope, '_> {
    /// Runs `work` on worker lcore `lcore`, which must be idle.
    pub fn launch(
        &'scope self,
        lcore: u32,
        work: impl FnOnce() + Send + 'scope,
    ) -> Result<(), DpdkError> {
        let work: Box<Work<'scope>> = Box::new(Box::new(work));
        let arg = Box::into_raw(work).cast::<c_void>();
        // SAFETY: `arg` is a leaked Box<Work> that `run_work` takes back exactly once. The
        // work may borrow data of lifetime 'scope: `lcore_scope` waits for this lcore before
        // 'scope ends, so the borrows outlive the run.
        let rc = unsafe { ffi::rte_eal_remote_launch(Some(run_work), arg, lcore) };
        if rc != 0 {
            // SAFETY: not launched: the Box was not taken back, and is freed here instead.
            drop(unsafe { Box::from_raw(arg.cast::<Work<'scope>>()) });
            return Err(DpdkError::Launch { lcore, code: rc });
        }
        self.launched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(lcore);
        Ok(())
    }

    fn wait_all(&self) {
        let launched = std::mem::take(
            &mut *self
                .launched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for lcore in launched {
            // SAFETY: waits for an lcore this scope launched; blocks until its work returns.
            unsafe { ffi::rte_eal_wait_lcore(lcore) };
        }
    }
}

unsafe extern "C" fn run_work(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Work> leaked by `launch` for this run; taken back once.
    let work = unsafe { Box::from_raw(arg.cast::<Work<'static>>()) };
    work();
    0
}

impl Eal {
    /// The worker lcores EAL started (all but the main one), in order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut lcores = Vec::new();
        let mut previous = u32::MAX; // -1: from the start
        loop {
            // SAFETY: EAL is initialised; the call only reads its lcore configuration.
            let next = unsafe { ffi::rte_get_next_lcore(previous, 1, 0) };
            if next >= ffi::RTE_MAX_LCORE {
                return lcores;
            }
            lcores.push(next);
            previous = next;
        }
    }
}
