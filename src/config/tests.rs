use super::*;
use secrecy::ExposeSecret;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const MINIMAL: &str = "[auth]\ndisabled = true\n[salesforce]\ntoken_url = \"https://example.my.salesforce.com/services/oauth2/token\"\n\
    client_id = \"abc\"\nclient_secret_file = \"secret.txt\"\n[mapping]\nfile = \"mapping.toml\"\n";

#[test]
fn minimal_file_gets_defaults_and_paths_relative_to_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.txt", "s3cr3t\n");
    let path = write(dir.path(), "proxy.toml", MINIMAL);
    let s = Settings::load(&path).unwrap();
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.server.base_path, "/fhir");
    assert_eq!(s.server.body_limit, 1024 * 1024);
    assert_eq!(s.tenants[0].salesforce.api_version, "65.0");
    match &s.tenants[0].salesforce.auth {
        SalesforceAuth::ClientCredentials { client_secret } => {
            assert_eq!(client_secret.expose_secret(), "s3cr3t");
        }
        other => panic!("expected client credentials, got {other:?}"),
    }
    assert_eq!(
        s.tenants[0].salesforce.token_failure_backoff,
        Duration::from_millis(5000)
    );
    assert!(!s.tenants[0].salesforce.token_refresh_ahead);
    assert_eq!(
        s.tenants[0].salesforce.token_lifetime,
        Duration::from_secs(3600)
    );
    assert_eq!(s.tenants[0].mapping_file, dir.path().join("mapping.toml"));
    match &s.store.engine {
        StoreEngine::Sqlite { path } => assert_eq!(path, &dir.path().join("appointments.db")),
        other => panic!("expected SQLite, got {other:?}"),
    }
    assert_eq!(s.store.claim_timeout, Duration::from_secs(120));
    assert_eq!(s.store.retention, None);
    assert_eq!(
        s.store.imports,
        [LegacyImport {
            tenant: None,
            file: dir.path().join("appointments.jsonl"),
            explicit: false
        }]
    );
}

#[test]
fn bad_values_name_the_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.txt", "s3cr3t\n");
    let cases = [
        (
            "[server]\nlisten = \"localhost\"\n",
            "server.listen",
            "port",
        ),
        (
            "[server]\nbase_path = \"fhir\"\n",
            "server.base_path",
            "start with /",
        ),
        (
            "[server]\nbody_limit = \"big\"\n",
            "server.body_limit",
            "invalid type",
        ),
        ("[server]\nlisen = \"x\"\n", "server", "unknown field"),
        (
            "[store]\npath = \"old.jsonl\"\n",
            "store.path",
            "store.import_jsonl",
        ),
        (
            "[store]\npath = \"a.db\"\nurl = \"postgres://fsp@127.0.0.1/fsp\"\n",
            "store",
            "not both",
        ),
        (
            "[store]\nclaim_timeout_secs = 60\n",
            "store.claim_timeout_secs",
            "longer than server.request_timeout_secs",
        ),
        (
            "[store]\nurl = \"postgres://fsp:hunter2@127.0.0.1/fsp\"\n",
            "store.url",
            "FSP_STORE__PASSWORD",
        ),
        (
            "[store]\npassword = \"hunter2\"\n",
            "store.password",
            "FSP_STORE__PASSWORD",
        ),
        (
            "[store]\nmax_connections = 4\n",
            "store.max_connections",
            "only with store.url",
        ),
    ];
    for (extra, key, reason) in cases {
        let path = write(dir.path(), "proxy.toml", &format!("{MINIMAL}{extra}"));
        let e = Settings::load(&path).unwrap_err();
        assert!(e.key.starts_with(key), "{e}");
        assert!(e.reason.contains(reason), "{e}");
        assert!(e.to_string().contains("proxy.toml"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
    let path = write(
        dir.path(),
        "proxy.toml",
        &MINIMAL.replace(
            "client_id = \"abc\"",
            "client_id = \"abc\"\napi_version = \"64.0\"",
        ),
    );
    let e = Settings::load(&path).unwrap_err();
    assert_eq!(e.key, "salesforce.api_version");
}

#[test]
fn a_token_url_in_clear_is_refused_unless_on_this_machine() {
    let secret = |v: &str| (v == ENV_CLIENT_SECRET).then(|| "x".to_owned());
    let with = |url: &str| MINIMAL.replace("https://example.my.salesforce.com", url);
    let e = from_text(&with("http://example.my.salesforce.com"), &secret).unwrap_err();
    assert_eq!(e.key, "salesforce.token_url");
    assert!(e.reason.contains("https"), "{e}");
    for local in [
        "http://127.0.0.1:9090",
        "http://localhost:9090",
        "http://[::1]:9090",
    ] {
        assert!(from_text(&with(local), &secret).is_ok(), "{local}");
    }
}

#[test]
fn a_postgres_store_takes_its_password_from_the_environment_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{MINIMAL}[store]\nurl = \"postgres://fsp@db.internal:6432/fsp?sslmode=require\"\n\
         max_connections = 4\nretention_days = 30\n"
    );
    let s = from_text(&text, &|v| {
        (v == ENV_STORE_PASSWORD || v == ENV_CLIENT_SECRET).then(|| "pw-from-env".to_owned())
    })
    .unwrap();
    let StoreEngine::Postgres(pg) = &s.store.engine else {
        panic!("expected PostgreSQL: {:?}", s.store.engine);
    };
    assert_eq!(pg.password.as_ref().unwrap().expose_secret(), "pw-from-env");
    assert_eq!(pg.max_connections, 4);
    assert_eq!(pg.url.host_str(), Some("db.internal"));
    assert_eq!(s.store.retention, Some(Duration::from_secs(30 * 86_400)));
    // The password never shows in the settings' debug text.
    assert!(!format!("{s:?}").contains("pw-from-env"));

    write(dir.path(), "db.password", "pw-from-file\n");
    let path = write(
        dir.path(),
        "proxy.toml",
        &format!(
            "{MINIMAL}[store]\nurl = \"postgres://fsp@127.0.0.1/fsp\"\n\
             password_file = \"db.password\"\n"
        ),
    );
    let model: FileModel = Figment::from(Toml::file(&path)).extract().unwrap();
    let s = Settings::from_model(model, &path.display().to_string(), &|v| {
        (v == ENV_CLIENT_SECRET).then(|| "x".to_owned())
    })
    .unwrap();
    let StoreEngine::Postgres(pg) = &s.store.engine else {
        panic!("expected PostgreSQL");
    };
    assert_eq!(
        pg.password.as_ref().unwrap().expose_secret(),
        "pw-from-file"
    );
}

#[test]
fn a_secret_in_the_file_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "proxy.toml",
        &MINIMAL.replace(
            "client_secret_file = \"secret.txt\"",
            "client_secret = \"hunter2\"",
        ),
    );
    let e = Settings::load(&path).unwrap_err();
    assert_eq!(e.key, "salesforce.client_secret");
    assert!(e.reason.contains(ENV_CLIENT_SECRET));
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn missing_secret_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "proxy.toml", MINIMAL);
    let e = Settings::load(&path).unwrap_err();
    assert_eq!(e.key, "salesforce.client_secret_file");
}

const JWT_MINIMAL: &str = "[auth]\ndisabled = true\n[salesforce]\ntoken_url = \"https://login.salesforce.com/services/oauth2/token\"\n\
    client_id = \"abc\"\nauth = \"jwt_bearer\"\nusername = \"integration@example.com\"\n\
    private_key_file = \"keys/salesforce.pem\"\n[mapping]\nfile = \"mapping.toml\"\n";

fn write_test_key(dir: &Path) {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    write(
        dir,
        "keys/salesforce.pem",
        &crate::salesforce::jwt::test_keys::trusted().private_pem,
    );
}

#[test]
fn jwt_bearer_reads_the_key_file_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    write_test_key(dir.path());
    let path = write(dir.path(), "proxy.toml", JWT_MINIMAL);
    let s = Settings::load(&path).unwrap().tenants.remove(0).salesforce;
    let SalesforceAuth::JwtBearer(jwt) = &s.auth else {
        panic!("expected jwt_bearer, got {:?}", s.auth);
    };
    assert_eq!(jwt.username, "integration@example.com");
    assert_eq!(jwt.audience, "https://login.salesforce.com");
    assert_eq!(s.auth.name(), "jwt_bearer");
    // The key is usable and never shown.
    jwt.private_key
        .sign(&crate::salesforce::jwt::Claims::new(
            "abc",
            "u",
            "a",
            std::time::SystemTime::now(),
        ))
        .unwrap();
    let shown = format!("{s:?}");
    assert!(
        !shown.contains("PRIVATE KEY") && !shown.contains("MII"),
        "{shown}"
    );
}

#[test]
fn jwt_bearer_options_are_read() {
    let dir = tempfile::tempdir().unwrap();
    write_test_key(dir.path());
    let extra = JWT_MINIMAL.replace(
        "[mapping]",
        "audience = \"https://test.salesforce.com/\"\ntoken_failure_backoff_ms = 250\n\
         token_refresh_ahead = true\n[mapping]",
    );
    let path = write(dir.path(), "proxy.toml", &extra);
    let s = Settings::load(&path).unwrap().tenants.remove(0).salesforce;
    let SalesforceAuth::JwtBearer(jwt) = &s.auth else {
        panic!("expected jwt_bearer");
    };
    assert_eq!(
        jwt.audience, "https://test.salesforce.com",
        "trailing / dropped"
    );
    assert_eq!(s.token_failure_backoff, Duration::from_millis(250));
    assert!(s.token_refresh_ahead);
}

#[test]
fn auth_settings_are_checked_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    write_test_key(dir.path());
    write(dir.path(), "secret.txt", "s3cr3t\n");
    write(
        dir.path(),
        "public.pem",
        &crate::salesforce::jwt::test_keys::trusted().public_pem,
    );
    write(dir.path(), "garbage.pem", "hunter2\n");
    let cases: [(String, &str, &str); 10] = [
        (
            JWT_MINIMAL.replace("username = \"integration@example.com\"\n", ""),
            "salesforce.username",
            "missing",
        ),
        (
            JWT_MINIMAL.replace("private_key_file = \"keys/salesforce.pem\"\n", ""),
            "salesforce.private_key_file",
            "missing",
        ),
        (
            JWT_MINIMAL.replace("keys/salesforce.pem", "public.pem"),
            "salesforce.private_key_file",
            "not a PEM RSA private key",
        ),
        (
            JWT_MINIMAL.replace("keys/salesforce.pem", "garbage.pem"),
            "salesforce.private_key_file",
            "garbage.pem",
        ),
        (
            JWT_MINIMAL.replace("keys/salesforce.pem", "absent.pem"),
            "salesforce.private_key_file",
            "cannot read",
        ),
        (
            JWT_MINIMAL.replace("[mapping]", "private_key = \"hunter2\"\n[mapping]"),
            "salesforce.private_key",
            "private_key_file",
        ),
        (
            JWT_MINIMAL.replace(
                "[mapping]",
                "client_secret_file = \"secret.txt\"\n[mapping]",
            ),
            "salesforce.client_secret_file",
            "no client secret",
        ),
        (
            JWT_MINIMAL.replace(
                "[mapping]",
                "audience = \"login.salesforce.com\"\n[mapping]",
            ),
            "salesforce.audience",
            "http(s) URL",
        ),
        (
            MINIMAL.replace(
                "client_id = \"abc\"",
                "client_id = \"abc\"\nusername = \"u\"",
            ),
            "salesforce.auth",
            "jwt_bearer",
        ),
        (
            MINIMAL.replace("example.my.salesforce.com", "login.salesforce.com"),
            "salesforce.token_url",
            "My Domain",
        ),
    ];
    for (text, key, reason) in cases {
        let path = write(dir.path(), "proxy.toml", &text);
        let e = Settings::load(&path).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.reason.contains(reason), "{e}");
        let shown = e.to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("MII"),
            "{shown}"
        );
    }
    let path = write(
        dir.path(),
        "proxy.toml",
        &JWT_MINIMAL.replace("jwt_bearer", "password"),
    );
    let e = Settings::load(&path).unwrap_err();
    assert_eq!(e.key, "salesforce.auth", "{e}");
    assert!(e.reason.contains("jwt_bearer"), "{e}");
}

#[test]
fn base_path_is_normalized() {
    assert_eq!(normalize_base_path("/fhir/").as_deref(), Some("/fhir"));
    assert_eq!(normalize_base_path("/").as_deref(), Some(""));
    assert_eq!(normalize_base_path("fhir"), None);
}

const TWO_TENANTS: &str = "[auth]\ndisabled = true\n[tenants.north.salesforce]\n\
    token_url = \"https://north.my.salesforce.com/services/oauth2/token\"\n\
    client_id = \"north-app\"\nclient_secret_file = \"north.secret\"\n\
    [tenants.north.mapping]\nfile = \"north.toml\"\n\
    [tenants.south-2.salesforce]\n\
    token_url = \"https://south.my.salesforce.com/services/oauth2/token\"\n\
    client_id = \"south-app\"\n\
    [tenants.south-2.mapping]\nfile = \"south.toml\"\n\
    [tenants.south-2.store]\nimport_jsonl = \"south-store.jsonl\"\n";

fn from_text(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let model: FileModel = Figment::from(Toml::string(text)).extract().unwrap();
    Settings::from_model(model, "/etc/fsp/proxy.toml", env)
}

#[test]
fn tenants_have_their_own_connection_mapping_store_and_secret_variable() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "north.secret", "n0rth\n");
    let path = write(dir.path(), "proxy.toml", TWO_TENANTS);
    // The south secret comes from its own variable (checked through `from_model`, so the
    // test does not touch the process environment).
    let model: FileModel = Figment::from(Toml::file(&path)).extract().unwrap();
    let env = |variable: &str| {
        (variable == "FSP_TENANTS__SOUTH_2__SALESFORCE__CLIENT_SECRET").then(|| "s0uth".to_owned())
    };
    let s = Settings::from_model(model, &path.display().to_string(), &env).unwrap();
    let names: Vec<Option<&str>> = s.tenants.iter().map(|t| t.name.as_deref()).collect();
    assert_eq!(names, [Some("north"), Some("south-2")]);
    let secret = |t: &TenantSettings| match &t.salesforce.auth {
        SalesforceAuth::ClientCredentials { client_secret } => {
            client_secret.expose_secret().to_owned()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(secret(&s.tenants[0]), "n0rth");
    assert_eq!(secret(&s.tenants[1]), "s0uth");
    assert_eq!(s.tenants[1].salesforce.client_id, "south-app");
    assert_eq!(s.tenants[0].mapping_file, dir.path().join("north.toml"));
    let imports: Vec<(Option<&str>, PathBuf, bool)> = s
        .store
        .imports
        .iter()
        .map(|i| (i.tenant.as_deref(), i.file.clone(), i.explicit))
        .collect();
    assert_eq!(
        imports,
        [
            (None, dir.path().join("appointments.jsonl"), false),
            (
                Some("north"),
                dir.path().join("appointments-north.jsonl"),
                false
            ),
            (Some("south-2"), dir.path().join("south-store.jsonl"), true),
        ]
    );
    assert_eq!(
        tenant_secret_variable("south-2"),
        "FSP_TENANTS__SOUTH_2__SALESFORCE__CLIENT_SECRET"
    );

    // The earlier per-tenant store file is refused, saying where it goes now.
    let old = TWO_TENANTS.replace("import_jsonl = \"south", "path = \"south");
    let e = from_text(&old, &|_| Some("x".to_owned())).unwrap_err();
    assert_eq!(e.key, "tenants.south-2.store.path");
    assert!(
        e.reason.contains("tenants.south-2.store.import_jsonl"),
        "{e}"
    );

    // An unnamed tenant beside named ones comes first.
    let both = format!(
        "{MINIMAL}{}",
        TWO_TENANTS.replace("[auth]\ndisabled = true\n", "")
    );
    let s = from_text(&both, &|_| Some("x".to_owned())).unwrap();
    let names: Vec<Option<&str>> = s.tenants.iter().map(|t| t.name.as_deref()).collect();
    assert_eq!(names, [None, Some("north"), Some("south-2")]);
}

#[test]
fn tenant_errors_name_the_tenant_key_and_its_own_secret_variable() {
    let err = from_text(TWO_TENANTS, &|_| None).unwrap_err();
    // North's secret file does not exist here; the first problem is reported with its key.
    assert_eq!(
        err.key, "tenants.north.salesforce.client_secret_file",
        "{err}"
    );
    // North's variable wins over its file; south has neither.
    let err = from_text(TWO_TENANTS, &|v| {
        v.contains("NORTH").then(|| "n".to_owned())
    })
    .unwrap_err();
    assert_eq!(err.key, "tenants.south-2.salesforce.client_secret", "{err}");
    assert!(
        err.reason
            .contains("FSP_TENANTS__SOUTH_2__SALESFORCE__CLIENT_SECRET"),
        "{err}"
    );
    let err = from_text(
        &TWO_TENANTS.replace("client_secret_file = \"north.secret\"\n", ""),
        &|v| v.contains("SOUTH").then(|| "s".to_owned()),
    )
    .unwrap_err();
    assert_eq!(err.key, "tenants.north.salesforce.client_secret");
    assert!(
        err.reason
            .contains("FSP_TENANTS__NORTH__SALESFORCE__CLIENT_SECRET"),
        "{err}"
    );
    for bad in ["North", "metadata", "-x", "a/b"] {
        let text = TWO_TENANTS.replace("tenants.north.", &format!("tenants.\"{bad}\"."));
        let err = from_text(&text, &|_| Some("s".to_owned())).unwrap_err();
        assert_eq!(err.key, "tenants", "{bad}: {err}");
    }
    let err = from_text("[server]\nlisten = \"127.0.0.1:1\"\n", &|_| None).unwrap_err();
    assert_eq!(err.key, "salesforce");
    assert!(err.reason.contains("[tenants.NAME"), "{err}");
    let err = from_text(
        &MINIMAL.replace("[mapping]\nfile = \"mapping.toml\"\n", ""),
        &|_| Some("s".to_owned()),
    )
    .unwrap_err();
    assert_eq!(err.key, "mapping.file");
}

#[test]
fn server_limits_shutdown_and_tls_keys_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.txt", "s3cr3t\n");
    let with = |server: &str| {
        let path = write(
            dir.path(),
            "proxy.toml",
            &format!("[server]\n{server}\n{MINIMAL}"),
        );
        Settings::load(&path).map(|s| (s.server, path))
    };
    let (s, path) = with(
        "max_header_bytes = 4096\nrequest_timeout_secs = 7\nmax_concurrent_requests = 3\n\
         shutdown_timeout_secs = 9\n[server.tls]\ncert_file = \"tls/c.pem\"\n\
         key_file = \"tls/k.pem\"",
    )
    .unwrap();
    assert_eq!(s.max_header_bytes, 4096);
    assert_eq!(s.request_timeout, Duration::from_secs(7));
    assert_eq!(s.max_concurrent_requests, 3);
    assert_eq!(s.shutdown_timeout, Duration::from_secs(9));
    assert_eq!(
        s.tls,
        Some(TlsSettings {
            cert_file: dir.path().join("tls/c.pem"),
            key_file: dir.path().join("tls/k.pem"),
        })
    );
    assert_eq!(s.config_file, Some(path));

    let (s, _) = with("").unwrap();
    assert_eq!(s.max_header_bytes, DEFAULT_MAX_HEADER_BYTES);
    assert_eq!(s.request_timeout, Duration::from_secs(60));
    assert_eq!(s.max_concurrent_requests, 256);
    assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(s.tls, None);

    for (keys, key, reason) in [
        (
            "max_header_bytes = 200000",
            "server.max_header_bytes",
            "131072",
        ),
        ("max_header_bytes = 10", "server.max_header_bytes", "1024"),
        (
            "max_concurrent_requests = 0",
            "server.max_concurrent_requests",
            "more than 0",
        ),
        (
            "request_timeout_secs = 0",
            "server.request_timeout_secs",
            "more than 0",
        ),
        (
            "[server.tls]\ncert_file = \"c.pem\"",
            "server.tls",
            "key_file",
        ),
    ] {
        let e = with(keys).unwrap_err();
        assert!(e.key.starts_with(key), "{e}");
        assert!(e.to_string().contains(reason), "{e}");
    }
}

#[test]
fn load_management_keys_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.txt", "s3cr3t\n");
    let with = |keys: &str| {
        let text = MINIMAL.replace(
            "client_id = \"abc\"",
            &format!("client_id = \"abc\"\n{keys}"),
        );
        Settings::load(&write(dir.path(), "proxy.toml", &text))
    };
    // Read through Debug so the test does not depend on where the settings sit.
    let read = format!(
        "{:?}",
        with(
            "throttle_retry_after_secs = 5\nthrottle_max_backoff_secs = 40\n\
              max_concurrent_requests = 7\nqueue_timeout_ms = 250"
        )
        .unwrap()
    );
    assert!(read.contains("throttle_retry_after: 5s"), "{read}");
    assert!(read.contains("throttle_max_backoff: 40s"), "{read}");
    assert!(read.contains("max_concurrent_requests: 7"), "{read}");
    assert!(read.contains("queue_timeout: 250ms"), "{read}");
    let defaults = format!("{:?}", with("").unwrap());
    assert!(
        defaults.contains("throttle_max_backoff: 900s"),
        "{defaults}"
    );
    assert!(
        defaults.contains("max_concurrent_requests: 20"),
        "{defaults}"
    );
    assert!(defaults.contains("queue_timeout: 5s"), "{defaults}");
    let e = with("max_concurrent_requests = 0").unwrap_err();
    assert_eq!(e.key, "salesforce.max_concurrent_requests", "{e}");
    let e = with("throttle_retry_after_secs = 60\nthrottle_max_backoff_secs = 30").unwrap_err();
    assert_eq!(e.key, "salesforce.throttle_max_backoff_secs", "{e}");
    assert!(e.reason.contains("throttle_retry_after_secs"), "{e}");
}
