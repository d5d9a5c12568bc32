//! `payledger support …`: the commands, their flags, and what they print.

use super::actions::{self, Outcome, RescueRequest};
use super::{find, queue, reply, SupportError};
use crate::plans::Plans;
use crate::processor::client::ProcessorClient;
use crate::store::PgEventStore;
use clap::Subcommand;
use payledger_projections::read::ReadModels;
use std::io::{BufRead, Write};

#[derive(Subcommand, Debug)]
pub enum SupportCommand {
    /// Open discrepancies, oldest first, with the command to run for each.
    Queue {
        /// Include resolved ones.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Everything about a customer: by email, payment id, checkout id or PL- reference.
    Find {
        key: String,
        #[arg(long)]
        json: bool,
    },
    /// Match an orphan charge to a customer and plan; activates and sends the rescue email.
    Rescue {
        payment_id: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        /// Match even though the amount does not fit the plan; the reason is recorded.
        #[arg(long)]
        force: Option<String>,
        #[arg(long = "as", env = "PAYLEDGER_ACTOR")]
        actor: Option<String>,
        #[arg(long)]
        yes: bool,
    },
    /// Refund a payment at the processor (all that is left, or --amount).
    Refund {
        payment_id: String,
        #[arg(long)]
        reason: String,
        /// Refund only this much, in the charge's currency (e.g. 50.00);
        /// without it, everything not refunded yet.
        #[arg(long)]
        amount: Option<String>,
        #[arg(long = "as", env = "PAYLEDGER_ACTOR")]
        actor: Option<String>,
        #[arg(long)]
        yes: bool,
    },
    /// Cancel a renewing plan at the processor: at the end of what was paid,
    /// or with --now at once (optionally refunding its last payment).
    Cancel {
        /// The customer's email, or the processor's subscription id (sub_…).
        key: String,
        /// End access now instead of at the end of the paid period.
        #[arg(long)]
        now: bool,
        /// Also refund the last payment.
        #[arg(long)]
        refund_last: bool,
        #[arg(long = "as", env = "PAYLEDGER_ACTOR")]
        actor: Option<String>,
        #[arg(long)]
        yes: bool,
    },
    /// Send an email again (by email key, or the latest email of a payment).
    ResendEmail {
        key: String,
        #[arg(long = "as", env = "PAYLEDGER_ACTOR")]
        actor: Option<String>,
    },
    /// Close a discrepancy with a note.
    Resolve {
        discrepancy_id: String,
        #[arg(long)]
        note: String,
        #[arg(long = "as", env = "PAYLEDGER_ACTOR")]
        actor: Option<String>,
    },
    /// Give access without a charge (shown as a grant forever after).
    Grant {
        #[arg(long)]
        email: String,
        #[arg(long)]
        plan: String,
        #[arg(long)]
        reason: String,
        #[arg(long = "as", env = "PAYLEDGER_ACTOR")]
        actor: Option<String>,
    },
    /// A ready-to-paste answer for this customer's current state.
    Reply {
        key: String,
        /// The name to sign with.
        #[arg(long, default_value = "The support team")]
        sign: String,
    },
}

pub struct SupportContext {
    pub store: PgEventStore,
    pub plans: Plans,
    pub processor: Option<ProcessorClient>,
}

fn who(actor: &Option<String>) -> Result<payledger_events::Actor, SupportError> {
    match actor {
        Some(a) => actions::actor(a),
        None => Err(SupportError::Invalid(
            "this changes something: say who you are with --as NAME (or PAYLEDGER_ACTOR)".into(),
        )),
    }
}

fn ask(yes: bool) -> impl FnMut(&str) -> bool {
    move |what: &str| {
        println!("This will {what}.");
        if yes {
            return true;
        }
        print!("Go ahead? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        matches!(line.trim(), "y" | "Y" | "yes")
    }
}

fn print_outcome(o: &Outcome) {
    println!("{}", o.message);
}

fn need_processor(ctx: &SupportContext) -> Result<&ProcessorClient, SupportError> {
    ctx.processor.as_ref().ok_or_else(|| {
        SupportError::Invalid(
            "the processor is not configured: set STRIPE_API_KEY (and STRIPE_API_BASE)".into(),
        )
    })
}

pub async fn run(ctx: &SupportContext, command: &SupportCommand) -> Result<(), SupportError> {
    let store = &ctx.store;
    match command {
        SupportCommand::Queue { all, json } => {
            let items = queue::queue(
                &ReadModels::of(store),
                &ctx.plans,
                *all,
                store.clock().now(),
            )
            .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(());
            }
            if items.is_empty() {
                println!("nothing needs a person right now");
            }
            for i in items {
                println!(
                    "{}  {}  {} min  {}  {}  [{}]\n    {}\n    run: {}",
                    i.id,
                    i.kind,
                    i.age_minutes,
                    queue::amount_text(i.amount, i.currency.as_deref()),
                    i.customer_email.as_deref().unwrap_or("no email"),
                    i.status,
                    i.suggested_action,
                    i.command
                );
            }
            // Not discrepancies — the processor is retrying and the customer
            // was emailed — but a person may want to call before the last try.
            let due = payledger_projections::read::subscriptions::past_due(&ReadModels::of(store))
                .await?;
            if !due.is_empty() {
                println!("\npast due (renewal declined; the processor retries, the customer was emailed):");
                for d in due {
                    println!(
                        "  {}  {}  next try {}",
                        d.email,
                        d.subscription_id,
                        d.next_try.map_or("none: it ends".into(), |t| t
                            .format("%Y-%m-%d %H:%M UTC")
                            .to_string())
                    );
                }
            }
        }
        SupportCommand::Find { key, json } => {
            let c = find::find(store, ctx.processor.as_ref(), key).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                print_customer(&c);
            }
        }
        SupportCommand::Rescue {
            payment_id,
            email,
            plan,
            force,
            actor,
            yes,
        } => {
            let by = who(actor)?;
            let req = RescueRequest {
                payment_id,
                email: email.as_deref(),
                plan: plan.as_deref(),
                force: force.as_deref(),
            };
            print_outcome(&actions::rescue(store, &ctx.plans, req, &by, &mut ask(*yes)).await?);
        }
        SupportCommand::Refund {
            payment_id,
            reason,
            amount,
            actor,
            yes,
        } => {
            let by = who(actor)?;
            let processor = need_processor(ctx)?;
            print_outcome(
                &actions::refund(
                    store,
                    processor,
                    payment_id,
                    reason,
                    amount.as_deref(),
                    &by,
                    &mut ask(*yes),
                )
                .await?,
            );
        }
        SupportCommand::Cancel {
            key,
            now,
            refund_last,
            actor,
            yes,
        } => {
            let by = who(actor)?;
            let processor = need_processor(ctx)?;
            let request = super::cancel::CancelRequest {
                key,
                now: *now,
                refund_last: *refund_last,
            };
            print_outcome(
                &super::cancel::cancel(store, processor, request, &by, &mut ask(*yes)).await?,
            );
        }
        SupportCommand::ResendEmail { key, actor } => {
            let by = who(actor)?;
            print_outcome(&actions::resend_email(store, key, &by).await?);
        }
        SupportCommand::Resolve {
            discrepancy_id,
            note,
            actor,
        } => {
            let by = who(actor)?;
            print_outcome(&actions::resolve(store, discrepancy_id, note, &by).await?);
        }
        SupportCommand::Grant {
            email,
            plan,
            reason,
            actor,
        } => {
            let by = who(actor)?;
            print_outcome(&actions::grant(store, &ctx.plans, email, plan, reason, &by).await?);
        }
        SupportCommand::Reply { key, sign } => {
            println!("{}", reply::reply_for(store, &ctx.plans, key, sign).await?);
        }
    }
    Ok(())
}

fn print_customer(c: &find::Customer) {
    println!(
        "customer: {}",
        c.email.as_deref().unwrap_or("(no email on record)")
    );
    match &c.subscription {
        Some(s) => println!(
            "subscription: {} {} ({}) {} .. {}",
            s.plan,
            s.status,
            s.activation,
            s.period_start.format("%Y-%m-%d"),
            s.period_end.format("%Y-%m-%d")
        ),
        None => println!("subscription: none"),
    }
    if let Some(s) = &c.subscription {
        if let Some(id) = &s.subscription_id {
            println!(
                "  renewing: {id}, {}",
                match (s.renews_at, s.cancel_at_period_end) {
                    (Some(at), _) => format!("renews {}", at.format("%Y-%m-%d")),
                    (None, true) => "cancelled: ends at the period's end".into(),
                    (None, false) => "does not renew".into(),
                }
            );
            for line in &s.history {
                println!("    {line}");
            }
        }
    }
    println!("payments:");
    for p in &c.payments {
        println!(
            "  {}  {}  {}  {}  payment {}  paid {}{}",
            p.reference,
            p.situation.map_or("-", crate::situation::Situation::name),
            p.plan.as_deref().unwrap_or("-"),
            queue::amount_text(p.amount, p.currency.as_deref()),
            p.payment_id.as_deref().unwrap_or("-"),
            p.paid_at
                .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "-".into()),
            if p.refunded_amount > 0 {
                format!(
                    "  refunded {}",
                    queue::amount_text(Some(p.refunded_amount), p.currency.as_deref())
                )
            } else {
                String::new()
            }
        );
        if let Some(v) = &p.processor {
            println!(
                "      processor: charge {} {} refunded {}{}",
                v.charge_id,
                queue::amount_text(Some(v.amount), Some(&v.currency)),
                queue::amount_text(Some(v.amount_refunded), Some(&v.currency)),
                if v.disputed { " DISPUTED" } else { "" }
            );
        }
        for d in &p.differences {
            println!("      DIFFERENCE: {d}");
        }
    }
    println!("emails:");
    for e in &c.emails {
        println!(
            "  {}  {}  attempts {}{}",
            e.email_key,
            e.status,
            e.attempts,
            e.last_error
                .as_ref()
                .map(|x| format!("  last error: {x}"))
                .unwrap_or_default()
        );
    }
    println!("open discrepancies:");
    for d in &c.open_discrepancies {
        println!("  {}  [{}]  {}", d.id, d.status, d.suggested_action);
    }
    println!("timeline:");
    for t in &c.timeline {
        println!(
            "  {}  {:<22} {:<22} {}",
            t.at.format("%Y-%m-%d %H:%M:%S"),
            t.event_type,
            t.actor,
            t.summary
        );
    }
}
