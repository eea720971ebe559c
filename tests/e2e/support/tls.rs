//! A throwaway certificate authority made with the `openssl` command at test
//! time, and server certificates it signs for loopback addresses.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Days the certificates stay valid. Tests use them for seconds.
const VALID_DAYS: &str = "2";

/// A CA certificate and its key, in PEM files in a test's folder.
pub struct TestCa {
    /// The CA certificate, which a client must trust.
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
}

/// A server certificate signed by a [`TestCa`], with its private key.
pub struct ServerCertificate {
    /// The certificate, in PEM.
    pub cert: PathBuf,
    /// The unencrypted P-256 private key, in PEM.
    pub key: PathBuf,
}

impl TestCa {
    /// Creates a self-signed CA in `dir/ca.pem` and `dir/ca.key`.
    pub fn create(dir: &Path) -> TestCa {
        let ca = TestCa {
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
            dir: dir.to_owned(),
        };
        run_openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-nodes", "-days", VALID_DAYS])
                .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
                .args(["-subj", "/CN=portcullis e2e CA"])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(&ca.key)
                .arg("-out")
                .arg(&ca.cert),
        );
        ca
    }

    /// Signs a server certificate for `ip` (an IP address SAN), written to
    /// `dir/<name>.pem` and `dir/<name>.key`.
    pub fn issue(&self, name: &str, ip: IpAddr) -> ServerCertificate {
        let issued = ServerCertificate {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        };
        let request = self.dir.join(format!("{name}.csr"));
        let extensions = self.dir.join(format!("{name}.ext"));
        std::fs::write(
            &extensions,
            format!(
                "subjectAltName=IP:{ip}\nbasicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", extensions.display()));
        run_openssl(
            Command::new("openssl")
                .args(["req", "-new", "-nodes", "-subj", &format!("/CN={ip}")])
                .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
                .arg("-keyout")
                .arg(&issued.key)
                .arg("-out")
                .arg(&request),
        );
        let serial = format!("0x{:016x}", rand::random::<u64>());
        run_openssl(
            Command::new("openssl")
                .args(["x509", "-req", "-days", VALID_DAYS, "-set_serial", &serial])
                .arg("-in")
                .arg(&request)
                .arg("-CA")
                .arg(&self.cert)
                .arg("-CAkey")
                .arg(&self.key)
                .arg("-extfile")
                .arg(&extensions)
                .arg("-out")
                .arg(&issued.cert),
        );
        issued
    }

    /// Returns the CA certificate for a test's own HTTP clients.
    pub fn certificate(&self) -> reqwest::Certificate {
        let pem = std::fs::read(&self.cert)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.cert.display()));
        reqwest::Certificate::from_pem(&pem).expect("openssl wrote a PEM certificate")
    }
}

/// Runs an `openssl` command and fails the test with its stderr when it
/// fails. The `openssl` command comes with Debian's base system.
fn run_openssl(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (is it installed?): {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
