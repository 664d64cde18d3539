//! Fargate: the fleet of tasks sized for the events a second, and the tasks' vCPU-hours and
//! GB-hours, on demand or at the Spot discount.

use super::Basis;
use super::bill::Bill;
use crate::CostError;
use crate::numbers::{amount, round_to, trim_number};
use crate::profile::Fargate;

/// How an estimate sized a fleet of Fargate tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetUsage {
    /// Events a second: `calls_per_month × events_per_call` over a 730-hour month.
    pub events_per_s: f64,
    /// Events a second one vCPU handles (an assumption until measured).
    pub events_per_vcpu_s: f64,
    /// Share of capacity sized for.
    pub utilisation: f64,
    /// Events a second one task handles at full load: vCPU × `events_per_vcpu_s`.
    pub task_events_per_s: f64,
    /// Tasks whatever the volume.
    pub min_tasks: u32,
    /// `max(min_tasks, ceil(events_per_s ÷ (task_events_per_s × utilisation)))`.
    pub tasks: u32,
}

/// The fleet, for a profile with both a `fleet` and `fargate`: `events_per_s` is the month's
/// average, `calls_per_month × events_per_call` over the month's seconds.
pub(super) fn size_fleet(bill: &mut Bill<'_>, events_per_s: f64) -> Option<FleetUsage> {
    let (profile, params) = (bill.profile, bill.params);
    match (&profile.fleet, &profile.fargate) {
        (Some(fleet), Some(fargate)) => {
            let events_per_vcpu_s = params.events_per_vcpu_s.unwrap_or(fleet.events_per_vcpu_s);
            let utilisation = params.utilisation.unwrap_or(fleet.utilisation);
            let task_events_per_s = fargate.vcpu * events_per_vcpu_s;
            let needed = (events_per_s / (task_events_per_s * utilisation)).ceil();
            // Saturating cast: a fleet of 4 billion tasks is already an answer.
            let tasks = (needed as u32).max(fleet.min_tasks);
            bill.notes.push(format!(
                "Fleet: {} events/s ÷ ({} vCPU × {} events/s per vCPU × {}% target utilisation = {} \
                 events/s a task) = {} → {tasks} task{} (at least {} for availability). The events/s \
                 per vCPU is an assumption until measured; the rate is the month's average.",
                amount(events_per_s),
                trim_number(fargate.vcpu),
                amount(events_per_vcpu_s),
                trim_number(utilisation * 100.0),
                amount(task_events_per_s * utilisation),
                trim_number(round_to(events_per_s / (task_events_per_s * utilisation), 2)),
                if tasks == 1 { "" } else { "s" },
                fleet.min_tasks,
            ));
            Some(FleetUsage {
                events_per_s,
                events_per_vcpu_s,
                utilisation,
                task_events_per_s,
                min_tasks: fleet.min_tasks,
                tasks,
            })
        }
        _ => None,
    }
}

/// The vCPU and memory lines of `tasks` tasks all month.
pub(super) fn price_tasks(bill: &mut Bill<'_>, fargate: &Fargate, tasks: u32) -> Result<(), CostError> {
    let book = bill.book;
    let (discount, kind) = if fargate.spot {
        let discount = book.unit_usd("fargate.spot_discount")?;
        (discount, format!("Spot, {}% off", trim_number(discount * 100.0)))
    } else {
        (0.0, "on-demand".to_owned())
    };
    let times_tasks = if tasks == 1 { String::new() } else { format!(" × {tasks} tasks") };
    bill.push(
        format!(
            "Fargate {} vCPU × {} h{times_tasks} ({kind})",
            trim_number(fargate.vcpu),
            trim_number(fargate.hours)
        ),
        "fargate.vcpu_hour",
        Basis::PerMonth,
        fargate.vcpu * fargate.hours * f64::from(tasks),
        discount,
    )?;
    bill.push(
        format!(
            "Fargate {} GB × {} h{times_tasks} ({kind})",
            trim_number(fargate.memory_gb),
            trim_number(fargate.hours)
        ),
        "fargate.gb_hour",
        Basis::PerMonth,
        fargate.memory_gb * fargate.hours * f64::from(tasks),
        discount,
    )?;
    Ok(())
}
