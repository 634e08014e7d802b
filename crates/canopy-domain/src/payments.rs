//! Payment methods (PM1-PM3): what a valid one is, when a project's expired
//! method is replaced by its substitute, and which projects to warn about.

use time::{Date, Duration};

use crate::platforms::FieldProblem;

/// How far ahead the forecast looks for payment methods that run out.
pub const FORECAST: Duration = Duration::days(30);

/// A payment method is in use up to and including its expiration day.
pub fn expired(expires_on: Date, today: Date) -> bool {
    expires_on < today
}

/// PM3: a project whose payment method has expired and that names a
/// substitute switches to the substitute (and then has none).
pub fn substitutes(method_expires_on: Date, has_substitute: bool, today: Date) -> bool {
    has_substitute && expired(method_expires_on, today)
}

/// The forecast: a project's payment method runs out within [`FORECAST`]
/// (or has) and no substitute is named.
pub fn needs_attention(method_expires_on: Date, has_substitute: bool, today: Date) -> bool {
    !has_substitute && method_expires_on <= today + FORECAST
}

/// Check a payment method's fields (PM1).
pub fn check_method(name: &str, amount: f64, billing_data_len: usize) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if name.trim().is_empty() || name.chars().count() > 200 {
        problems.push(("name".into(), "must be 1 to 200 characters".into()));
    }
    if !amount.is_finite() || amount < 0.0 {
        problems.push(("amount".into(), "must be a number, zero or more".into()));
    }
    if billing_data_len > 64 {
        problems.push(("billing_data".into(), "must have at most 64 entries".into()));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn pm3_an_expired_method_with_a_substitute_is_replaced() {
        let today = date!(2026 - 12 - 01);
        assert!(!substitutes(date!(2026 - 12 - 01), true, today), "in use on its last day");
        assert!(substitutes(date!(2026 - 11 - 30), true, today));
        assert!(!substitutes(date!(2026 - 11 - 30), false, today), "nothing to switch to");
    }

    #[test]
    fn pm2_forecast_lists_methods_running_out_without_a_substitute() {
        let today = date!(2026 - 12 - 01);
        assert!(needs_attention(date!(2026 - 12 - 31), false, today));
        assert!(!needs_attention(date!(2027 - 01 - 01), false, today));
        assert!(!needs_attention(date!(2026 - 12 - 05), true, today));
        assert_eq!(check_method(" ", -1.0, 0).len(), 2);
    }
}
