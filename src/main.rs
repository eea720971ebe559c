//! The `portcullis` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::cli;
use portcullis::config::Settings;

/// An authentication sidecar: OpenID Connect single sign-on and SCIM 2.0
/// provisioning in front of a web dashboard.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and admin listeners until SIGTERM.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file with its environment overrides; exit 0
    /// when it is valid.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage the API tokens that SCIM clients authenticate with.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Manage users in the directory by hand.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it, once, as the only line on standard output.
    Create {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// A label for the token, such as "okta-production".
        #[arg(long)]
        name: String,
    },
    /// List the tokens: ids, names and dates, never the secrets.
    List {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Revoke a token by id; SCIM requests with it get 401 from then on.
    Revoke {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The token id shown by `token list`.
        id: String,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add an active user whose userName is the email address; prints its id.
    Add {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Email address, also the userName.
        #[arg(long)]
        email: String,
    },
    /// List the users.
    List {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Mark a user inactive; the user stays in the directory.
    Deactivate {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The user id shown by `user list`.
        id: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Token { action } => token(action),
        Command::User { action } => user(action),
    }
}

fn serve(path: &Path) -> ExitCode {
    let Some(settings) = load(path) else {
        return ExitCode::from(2);
    };
    portcullis::logging::init(&settings.config.log);
    match portcullis::server::run(settings) {
        Ok(never) => match never {},
        Err(error) => {
            tracing::error!(error = %error, "cannot start");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &Path) -> ExitCode {
    match load(path) {
        Some(_) => {
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        None => ExitCode::from(2),
    }
}

fn token(action: TokenAction) -> ExitCode {
    match action {
        TokenAction::Create { config, name } => run(&config, |settings| async move {
            let token = cli::create_token(&settings, &name).await?;
            println!("{token}");
            Ok(())
        }),
        TokenAction::List { config } => run(&config, |settings| async move {
            print!("{}", cli::list_tokens(&settings).await?);
            Ok(())
        }),
        TokenAction::Revoke { config, id } => run(&config, |settings| async move {
            cli::revoke_token(&settings, &id).await?;
            println!("revoked {id}");
            Ok(())
        }),
    }
}

fn user(action: UserAction) -> ExitCode {
    match action {
        UserAction::Add {
            config,
            name,
            email,
        } => run(&config, |settings| async move {
            println!("{}", cli::add_user(&settings, &name, &email).await?);
            Ok(())
        }),
        UserAction::List { config } => run(&config, |settings| async move {
            print!("{}", cli::list_users(&settings).await?);
            Ok(())
        }),
        UserAction::Deactivate { config, id } => run(&config, |settings| async move {
            match cli::deactivate_user(&settings, &id).await? {
                Some(ended) => println!("deactivated {id}; ended {ended} sessions"),
                None => println!(
                    "deactivated {id}; its sessions are in the server's memory and last until session.ttl or a restart"
                ),
            }
            Ok(())
        }),
    }
}

/// Loads the configuration, printing the error (which names the key).
fn load(path: &Path) -> Option<Settings> {
    match portcullis::config::load(path) {
        Ok(settings) => Some(settings),
        Err(error) => {
            eprintln!("error: invalid configuration: {error}");
            None
        }
    }
}

/// Runs an administration command on a runtime of its own; the server is
/// not involved.
fn run<F, Fut>(path: &Path, command: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = Result<(), cli::CommandError>>,
{
    let Some(settings) = load(path) else {
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
