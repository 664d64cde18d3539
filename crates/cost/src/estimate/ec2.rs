//! EC2: a server's instance-hours at its instance type's price (the profile's, or
//! `Params::instance_type`), whatever the calls.

use super::Basis;
use super::bill::Bill;
use crate::CostError;
use crate::numbers::trim_number;
use crate::profile::Instance;

/// The instance line; an error naming the types the book prices if it lacks this one.
pub(super) fn price_instance(bill: &mut Bill<'_>, instance: &Instance) -> Result<(), CostError> {
    let (book, params) = (bill.book, bill.params);
    let instance_type = params.instance_type.as_deref().unwrap_or(&instance.instance_type);
    let key = format!("ec2.{instance_type}");
    if book.price(&key).is_err() {
        return Err(CostError::InvalidParam {
            name: "instance_type",
            reason: format!(
                "{} has no price for `{instance_type}`; known: {}",
                book.file(),
                book.instance_types().join(", ")
            ),
        });
    }
    bill.push(
        format!("EC2 {instance_type} ({} h)", trim_number(instance.hours)),
        &key,
        Basis::PerMonth,
        instance.hours,
        0.0,
    )
}
