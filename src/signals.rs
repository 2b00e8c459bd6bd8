//! The process's signals: SIGHUP reloads the mappings (and reopens the audit file), SIGTERM and
//! SIGINT drain the server and stop it.

use crate::reload::reload_in_background;
use crate::server::Application;

/// Runs the proxy until SIGTERM or Ctrl-C, reloading on SIGHUP: [`Signals::install`] then
/// [`Signals::run`].
///
/// # Errors
/// When the signal handlers cannot be installed or the server fails.
pub async fn run_until_signalled(app: Application) -> std::io::Result<()> {
    Signals::install()?.run(app).await
}

/// The process's signal handlers, installed before the proxy says it has started: until they are,
/// SIGHUP's default action would end the process instead of reloading.
pub struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers for SIGHUP, SIGTERM and SIGINT (inside the runtime).
    ///
    /// # Errors
    /// When a handler cannot be installed.
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Runs the proxy until SIGTERM or Ctrl-C, reloading on SIGHUP. On the first stop signal it
    /// stops accepting connections and lets requests in flight finish within the shutdown
    /// timeout; a second stops at once. Logs the start and the end of the drain.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run(self, app: Application) -> std::io::Result<()> {
        let Signals {
            mut hangup,
            mut terminate,
            mut interrupt,
        } = self;
        drive(app, &mut hangup, &mut terminate, &mut interrupt).await
    }
}

async fn drive(
    app: Application,
    hangup: &mut tokio::signal::unix::Signal,
    terminate: &mut tokio::signal::unix::Signal,
    interrupt: &mut tokio::signal::unix::Signal,
) -> std::io::Result<()> {
    let handle = app.handle();
    let reloader = app.reloader();
    let shutdown_timeout = app.shutdown_timeout();
    let server = app.run_until_stopped();
    tokio::pin!(server);
    let mut draining = false;
    loop {
        let name = tokio::select! {
            result = &mut server => {
                if draining {
                    tracing::info!("drain finished; proxy stopped");
                }
                return result;
            }
            _ = hangup.recv() => {
                tracing::info!("SIGHUP received: reloading the mappings");
                // The outcome is logged by the reload itself; reloads queue on its lock.
                let reloader = reloader.clone();
                actix_web::rt::spawn(async move {
                    let result = reload_in_background(reloader).await;
                    crate::http::audit::signal_reload(result.is_ok());
                });
                continue;
            }
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        if draining {
            tracing::warn!(
                signal = name,
                "second stop signal: stopping without waiting"
            );
            actix_web::rt::spawn(handle.stop(false));
        } else {
            draining = true;
            tracing::info!(
                signal = name,
                shutdown_timeout_secs = shutdown_timeout.as_secs(),
                "stop signal received: no new connections; draining requests in flight"
            );
            actix_web::rt::spawn(handle.stop(true));
        }
    }
}
