//! berth-ingress binary: parse args, set up logging, run the chosen command.

use anyhow::Context as _;
use berth_ingress::args::{Args, Command, LogFormat};
use berth_ingress::controller;
use clap::Parser as _;

fn init_logging(format: LogFormat) {
    use berth_common::logging::{Format, init};
    // JSON: the event's fields under "fields" (as berth-ingress always wrote them).
    init(match format {
        LogFormat::Json => Format::Json { flatten: false },
        LogFormat::Text => Format::Text,
    });
}

fn print_reports(reports: &[berth_ingress::model::Report]) {
    for r in reports {
        eprintln!("rejected: {r}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::ExecTied { parent, command }) = &args.command {
        let err = berth_ingress::supervisor::exec_tied(*parent, &command[0], &command[1..]);
        return Err(anyhow::Error::new(err).context("starting nginx"));
    }
    init_logging(args.opts.log_format);
    match args.command.unwrap_or(Command::Run) {
        Command::Run => controller::run(args.opts, controller::shutdown_signal()).await?,
        Command::Render { from } => {
            let (text, reports) = controller::render_dir(&args.opts, &from)?;
            print!("{text}");
            print_reports(&reports);
        }
        Command::Check { from } => {
            let checks = controller::check_dir(&args.opts, &from)?;
            print!("{}", berth_ingress::check::format(&checks));
            if berth_ingress::check::any_refused(&checks) {
                eprintln!("some Ingresses of berth's class would not be served (see above)");
                std::process::exit(1);
            }
        }
        Command::ExecTied { .. } => unreachable!("handled above"),
        Command::Init { from, out } => {
            let reports = controller::init(&args.opts, &from, &out)
                .await
                .with_context(|| format!("writing the first config to {}", out.display()))?;
            print_reports(&reports);
        }
    }
    Ok(())
}
