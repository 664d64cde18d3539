//! Prints every architecture's figures in eu-west-2, today and with 2021's prices:
//! `cargo test -p cost --test figures -- --nocapture`.

use cost::{CostError, Format, Params, book, estimate, profiles, render_summary};

#[test]
fn every_architecture_prints_its_london_figures_today_and_in_2021() -> Result<(), CostError> {
    let params = Params::default();
    let mut all = Vec::new();
    for as_of in ["2026-11", "2021"] {
        let prices = book("eu-west-2", Some(as_of))?;
        for profile in profiles()? {
            all.push(estimate(profile, prices, &params)?);
        }
    }
    let text = render_summary(&all, Format::Text);
    println!("{text}");
    let markdown = render_summary(&all, Format::Markdown);
    assert_eq!(markdown.lines().count(), all.len() + 2);
    assert_eq!(text.lines().count(), all.len() + 1);
    let today = &all[0];
    println!("{today}");
    println!("{}", today.render(Format::Markdown));
    assert!(today.render(Format::Text).contains("per-call total"));
    Ok(())
}
