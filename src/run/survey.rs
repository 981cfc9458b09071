//! A survey: measure and decide, acting on nothing. What `scan` and `status` show, the
//! daemon's index and the metrics textfile's gauges are this one view.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::report::SurveyView;
use cachekeeper_core::config::Config;
use cachekeeper_core::model::{LastUse, Sides, Snapshot, Watched};
use cachekeeper_sys::measure::Reuse;
use cachekeeper_sys::measure::inventory::FingerprintCache;
use cachekeeper_sys::progress::Progress;

/// What the decision knows of builds' uses besides the snapshot.
#[derive(Default)]
pub struct Records {
    /// What the daemon recorded of last use, when there is a daemon.
    pub uses: Option<LastUse>,
    /// Target dirs the daemon watches whole, and since when.
    pub watched: Watched,
}

/// What was measured, the view of it with the plan a run would make now, and when.
pub struct Survey {
    pub snapshot: Snapshot,
    pub view: SurveyView,
    pub watched: Watched,
    pub at: SystemTime,
}

/// Measures `sides` under `roots` (taking what `reuse` says is unchanged as it was) and plans
/// on it. `records` is asked, after the measurement
/// and at the moment the plan is made, for what is known of builds' uses (the daemon syncs its
/// watches to the snapshot there).
pub async fn survey<F>(
    config: &Config,
    roots: &[PathBuf],
    sides: Sides,
    progress: &Arc<Progress>,
    cache: Option<&Arc<FingerprintCache>>,
    reuse: Option<Reuse>,
    records: F,
) -> Survey
where
    F: FnOnce(&Snapshot, SystemTime) -> Records + Send + 'static,
{
    let (snapshot, _) = super::measure(config, roots, sides, progress, cache, reuse).await;
    let config = config.clone();
    super::on_disk(move || {
        let now = SystemTime::now();
        let Records { uses, watched } = records(&snapshot, now);
        let (plan, buildkit) = super::decide(&config, &snapshot, uses.as_ref(), &watched, now);
        let view = SurveyView::of(&config, &snapshot, &plan, buildkit.as_ref());
        Survey {
            snapshot,
            view,
            watched,
            at: now,
        }
    })
    .await
}
