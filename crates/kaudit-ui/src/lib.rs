//! The web UI's static assets (HTML, CSS, JavaScript), embedded in the binary so that
//! `kaudit serve` needs no CDN, no network and no build step at run time.
//!
//! Owns: the pages of the events feed, activity audit, overview, rules and policies, and
//! intakes, and the table of assets with their content types. The pages talk only to the
//! public JSON API under `/api/v1`, with the API token the user signs in with.
//!
//! Must never: embed data, credentials or anything fetched from outside; know routes other
//! than the public API; depend on the server or store crates.

/// One embedded file.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// Path under the UI root, without a leading slash (`"app.js"`).
    pub path: &'static str,
    /// The `Content-Type` to serve it with.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

/// Every asset. `index.html` is the page served at `/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/index.html"),
    },
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        path: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../assets/favicon.svg"),
    },
];

/// The asset at `path` (leading `/` ignored; the empty path is `index.html`).
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// The Content-Security-Policy the pages are written for: everything from the same origin,
/// no inline scripts, no external connections.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_served_at_the_root_and_references_only_embedded_assets() {
        let index = std::str::from_utf8(asset("/").unwrap().body).unwrap();
        for reference in ["app.css", "app.js", "favicon.svg"] {
            assert!(index.contains(reference), "{reference}");
            assert!(asset(reference).is_some(), "{reference}");
        }
        assert!(
            !index.contains("http://") && !index.contains("https://"),
            "no external references"
        );
        assert!(asset("../Cargo.toml").is_none());
    }

    #[test]
    fn scripts_use_only_the_public_api() {
        let js = std::str::from_utf8(asset("app.js").unwrap().body).unwrap();
        assert!(js.contains("/api/v1/"));
        // The SVG namespace is a name, not an address the page connects to.
        let without_namespace = js.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !without_namespace.contains("http://") && !without_namespace.contains("https://"),
            "no external connections"
        );
        assert!(!js.contains("eval("), "no eval");
    }
}
