//! The reconciliation rule: what the server should hold, what it holds as far as the SDK knows,
//! and the one step that brings the two together.
//!
//! Pure: the component hands in a snapshot and the time, and gets back a [`Plan`]. Nothing here
//! touches the network, the database or a clock.

use std::time::{Duration, SystemTime};

/// What the registration should say, from what the app last reported. The token itself is not
/// here, only its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) platform: &'static str,
    pub(crate) token_sha256: String,
    pub(crate) app_version: Option<String>,
    pub(crate) locale: Option<String>,
    pub(crate) opt_in: bool,
}

/// The registration the server holds, as recorded when it last confirmed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Registered {
    pub(crate) platform: String,
    pub(crate) token_sha256: String,
    pub(crate) app_version: Option<String>,
    pub(crate) locale: Option<String>,
    pub(crate) opt_in: bool,
    /// The user the server registered the device for, as it said.
    pub(crate) user: Option<String>,
    /// When the server last confirmed the registration, by a `PUT` or a `GET`.
    pub(crate) verified_at: SystemTime,
}

impl Registered {
    /// The record of a registration the server just accepted.
    pub(crate) fn from_wanted(wanted: &Wanted, user: Option<String>, at: SystemTime) -> Self {
        Registered {
            platform: wanted.platform.to_owned(),
            token_sha256: wanted.token_sha256.clone(),
            app_version: wanted.app_version.clone(),
            locale: wanted.locale.clone(),
            opt_in: wanted.opt_in,
            user,
            verified_at: at,
        }
    }

    fn says(&self, wanted: &Wanted) -> bool {
        self.platform == wanted.platform
            && self.token_sha256 == wanted.token_sha256
            && self.app_version == wanted.app_version
            && self.locale == wanted.locale
            && self.opt_in == wanted.opt_in
    }
}

/// Everything the rule looks at.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot<'a> {
    /// `None` until the app has handed over a token in this process.
    pub(crate) wanted: Option<&'a Wanted>,
    /// Whether requests can carry credentials: a session is signed in (or the client uses fixed
    /// credentials).
    pub(crate) can_authenticate: bool,
    pub(crate) registered: Option<&'a Registered>,
    /// A sign-out could not unregister the device; it must be done without credentials.
    pub(crate) unregister_pending: bool,
    pub(crate) now: SystemTime,
    pub(crate) reverify_interval: Duration,
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing to do. Look again after this long (a re-verification falls due), or only when
    /// something changes.
    Idle { recheck_in: Option<Duration> },
    /// `PUT` the wanted registration.
    Register,
    /// `GET` the registration to confirm the server still has it.
    Verify,
    /// `DELETE` the registration without credentials: the user signed out.
    Unregister,
}

/// Decides the next step.
///
/// - Signed out, the only thing left to do is an unregistration that sign-out could not make.
/// - A registration that differs from the wanted one in any field (token, app version, locale,
///   opt-in) is replaced. So is a missing one; a sign-in forgets the record, so a new user (or
///   the same one again) always gets a fresh `PUT`.
/// - A new registration supersedes a pending unregistration: the `PUT` takes the device over.
/// - A registration last confirmed `reverify_interval` ago or more is verified.
pub(crate) fn plan(snapshot: &Snapshot<'_>) -> Plan {
    let idle = Plan::Idle { recheck_in: None };

    if !snapshot.can_authenticate {
        return if snapshot.unregister_pending {
            Plan::Unregister
        } else {
            idle
        };
    }

    let registered = match (snapshot.wanted, snapshot.registered) {
        (Some(wanted), Some(registered)) if !registered.says(wanted) => return Plan::Register,
        (Some(_), None) => return Plan::Register,
        (None, None) if snapshot.unregister_pending => return Plan::Unregister,
        (None, None) => return idle,
        (_, Some(registered)) => registered,
    };

    let age = snapshot
        .now
        .duration_since(registered.verified_at)
        .unwrap_or(Duration::ZERO);
    if age >= snapshot.reverify_interval {
        Plan::Verify
    } else {
        Plan::Idle {
            recheck_in: Some(snapshot.reverify_interval - age),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn at(days: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + DAY * days as u32
    }

    fn wanted() -> Wanted {
        Wanted {
            platform: "fcm",
            token_sha256: "aaaa".into(),
            app_version: Some("1.0".into()),
            locale: Some("en-GB".into()),
            opt_in: true,
        }
    }

    fn registered(verified_at: SystemTime) -> Registered {
        Registered::from_wanted(&wanted(), Some("alice".into()), verified_at)
    }

    fn snapshot<'a>(
        wanted: Option<&'a Wanted>,
        registered: Option<&'a Registered>,
        now: SystemTime,
    ) -> Snapshot<'a> {
        Snapshot {
            wanted,
            can_authenticate: true,
            registered,
            unregister_pending: false,
            now,
            reverify_interval: DAY * 7,
        }
    }

    #[test]
    fn test_a_first_token_is_registered() {
        let wanted = wanted();

        assert_eq!(plan(&snapshot(Some(&wanted), None, at(0))), Plan::Register);
    }

    #[test]
    fn test_nothing_changed_means_no_call_until_the_next_verification() {
        let wanted = wanted();
        let registered = registered(at(0));

        let next = plan(&snapshot(Some(&wanted), Some(&registered), at(2)));

        assert_eq!(
            next,
            Plan::Idle {
                recheck_in: Some(DAY * 5)
            }
        );
    }

    #[test]
    fn test_any_changed_field_is_registered_again() {
        let registered = registered(at(0));
        let changes: [fn(&mut Wanted); 5] = [
            |w| w.token_sha256 = "bbbb".into(),
            |w| w.platform = "apns",
            |w| w.app_version = Some("1.1".into()),
            |w| w.locale = None,
            |w| w.opt_in = false,
        ];

        for (index, change) in changes.iter().enumerate() {
            let mut wanted = wanted();
            change(&mut wanted);

            let next = plan(&snapshot(Some(&wanted), Some(&registered), at(1)));

            assert_eq!(next, Plan::Register, "change {index}");
        }
    }

    #[test]
    fn test_a_due_registration_is_verified_even_before_the_token_is_known() {
        let wanted = wanted();
        let registered = registered(at(0));

        assert_eq!(
            plan(&snapshot(Some(&wanted), Some(&registered), at(7))),
            Plan::Verify
        );
        assert_eq!(
            plan(&snapshot(None, Some(&registered), at(8))),
            Plan::Verify
        );
    }

    #[test]
    fn test_without_a_token_and_a_registration_there_is_nothing_to_do() {
        assert_eq!(
            plan(&snapshot(None, None, at(0))),
            Plan::Idle { recheck_in: None }
        );
    }

    #[test]
    fn test_signed_out_only_a_pending_unregistration_is_made() {
        let wanted = wanted();
        let registered = registered(at(0));
        let mut signed_out = snapshot(Some(&wanted), Some(&registered), at(30));
        signed_out.can_authenticate = false;

        assert_eq!(plan(&signed_out), Plan::Idle { recheck_in: None });
        signed_out.unregister_pending = true;
        assert_eq!(plan(&signed_out), Plan::Unregister);
    }

    #[test]
    fn test_a_new_registration_supersedes_a_pending_unregistration() {
        let wanted = wanted();
        let mut next_user = snapshot(Some(&wanted), None, at(0));
        next_user.unregister_pending = true;

        assert_eq!(plan(&next_user), Plan::Register);
        next_user.wanted = None;
        assert_eq!(plan(&next_user), Plan::Unregister);
    }

    #[test]
    fn test_a_clock_set_back_does_not_skip_verification_forever() {
        let wanted = wanted();
        let registered = registered(at(10));

        let next = plan(&snapshot(Some(&wanted), Some(&registered), at(9)));

        assert_eq!(
            next,
            Plan::Idle {
                recheck_in: Some(DAY * 7)
            }
        );
    }
}
