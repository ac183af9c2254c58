use clap::Parser;
use plenum::config::{Cli, Command, Config, LogFormat};

fn main() -> std::process::ExitCode {
    // Before any thread starts (the runtime's among them).
    plenum::memory::limit_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("plenum: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_cli())
}

async fn run_cli() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The SIP stack logs every message it sends and receives at info level, callers' numbers
    // included: it speaks at warn unless the filter names it (debugging a trunk).
    let given = std::env::var("PLENUM_LOG").unwrap_or_else(|_| "info".into());
    let given = if given.contains("rsipstack") { given } else { format!("{given},rsipstack=warn") };
    let filter = tracing_subscriber::EnvFilter::try_new(&given).unwrap_or_else(|_| "info,rsipstack=warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
    let result = match cli.command {
        Command::Serve(args) => match Config::resolve(args) {
            Ok(config) => plenum::app::run(config).await,
            Err(e) => Err(e),
        },
        Command::Check(args) => Config::resolve(args).and_then(|config| plenum::app::check(&config)).map(|summary| println!("{summary}")),
        Command::Drain(args) => plenum::cluster::drain(&args).await.map(|said| println!("{said}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plenum: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
