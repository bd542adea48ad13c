//! Upstreams, scripts, ruleset files and the rules version.

use super::*;

// ---------------------------------------------------------------------------------------------
// Upstreams

/// The digest of what a call sends tells every edit of the file, a `${VAR}` taken as written:
/// `Bearer ${T}` to `Token ${T}` or to `Bearer ${T2}` is an edit, another value of `T` is not.
#[test]
fn an_upstreams_digest_follows_the_file_and_not_the_variables_values() {
    let digest = |url: &str, auth: &str, env: &[(&str, &str)]| {
        let yaml = format!(
            "upstreams:\n  shop: {{ url: \"{url}\", headers: {{ Authorization: \"{auth}\" }} }}\nrules:\n  - {{ name: up, forward: {{ upstream: shop, path: /c }} }}\n"
        );
        let rules = default_file(&yaml).ok_with(env);
        rules.get("default").unwrap().upstreams["shop"]
            .digest
            .clone()
    };
    let env = [
        ("URL", "http://a.test"),
        ("T", "t0ken-one"),
        ("T2", "t0ken-one"),
    ];
    let first = digest("${URL}", "Bearer ${T}", &env);
    assert!(
        first.len() == 19 && first.starts_with(crate::upstream::DIGEST_SCHEME),
        "{first}"
    );
    let rotated = [("URL", "http://b.test"), ("T", "t0ken-two"), ("T2", "x")];
    assert_eq!(digest("${URL}", "Bearer ${T}", &rotated), first);
    for (url, auth) in [
        ("${URL}", "Token ${T}"),
        ("${URL}", "Bearer ${T2}"),
        ("${URL}/v2", "Bearer ${T}"),
    ] {
        assert_ne!(digest(url, auth, &env), first, "{url} {auth}");
    }
}

#[test]
fn upstreams_substitute_variables_and_resolve_references() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: "${SHOP_API_URL}/"
    timeout: 1500ms
    headers: { Authorization: "Bearer ${SHOP_API_TOKEN}", X-Client: confirm-proxy }
    health: { path: /health, interval: 10s, unhealthy_after: 3 }
  legacy:
    url: http://legacy.test:8080
rules:
  - name: shop-up
    healthy: shop
    reason: 상점 점검 중입니다
  - name: stock
    fetch:
      upstream: shop
      method: GET
      path: "/api/stock/{order_id}"
      query: { tx: "{tx_id}" }
      headers: { X-Order: "{order_id}" }
    require: 'response.status == 200 && response.body.available >= 1'
    reason: "재고 {response.body.available}개"
  - name: reserve
    fetch: { upstream: shop, method: POST, path: /api/reserve, body: { order: "{order_id}", qty: 1 } }
    reason: 예약 실패
  - name: existing-confirm
    forward: { upstream: legacy, path: /payments/confirm }
"#,
    );
    let rules = dir.ok_with(&[
        ("SHOP_API_URL", "https://shop.internal:8443/v1"),
        ("SHOP_API_TOKEN", "s3cr3t"),
    ]);
    let set = rules.get("default").unwrap();
    assert_eq!(set.upstreams.keys().collect::<Vec<_>>(), ["legacy", "shop"]);

    let shop = &set.upstreams["shop"];
    assert_eq!(shop.name, "shop");
    assert_eq!(shop.url, "https://shop.internal:8443/v1");
    assert_eq!(shop.timeout, Duration::from_millis(1500));
    let auth = &shop.headers["authorization"];
    assert_eq!(auth, "Bearer s3cr3t");
    assert!(auth.is_sensitive());
    // Masked where the upstream echoes them, longest first.
    let secrets: Vec<&[u8]> = shop.secrets.iter().map(|f| f.needle()).collect();
    assert_eq!(
        secrets,
        [&b"https://shop.internal:8443/v1"[..], &b"s3cr3t"[..]]
    );
    let client = &shop.headers["x-client"];
    assert_eq!(client, "confirm-proxy");
    assert!(!client.is_sensitive());
    let health = shop.health.as_ref().unwrap();
    assert_eq!(health.path, "/health");
    assert_eq!(health.interval, Duration::from_secs(10));
    assert_eq!((health.unhealthy_after, health.healthy_after), (3, 1));
    // The secret never shows in debug output.
    assert!(!format!("{shop:?}").contains("s3cr3t"));

    let legacy = &set.upstreams["legacy"];
    assert_eq!(legacy.url, "http://legacy.test:8080");
    assert_eq!(legacy.timeout, DEFAULT_UPSTREAM_TIMEOUT);
    assert!(legacy.headers.is_empty());
    assert!(legacy.health.is_none());

    let r = &set.rules;
    match &r[0].check {
        Check::Healthy(up) => assert!(Arc::ptr_eq(up, shop)),
        other => panic!("expected healthy, got {other:?}"),
    }
    match &r[1].check {
        Check::Fetch(f) => {
            assert!(Arc::ptr_eq(&f.upstream, shop));
            assert_eq!(f.method, HttpMethod::GET);
            assert_eq!(f.path, reason("/api/stock/{order_id}"));
            assert_eq!(f.query, [("tx".to_owned(), reason("{tx_id}"))]);
            assert_eq!(f.headers.len(), 1);
            assert_eq!(f.headers[0].0, "x-order");
            assert!(f.body.is_none());
            assert_eq!(
                f.require.as_ref().map(|e| e.src.as_str()),
                Some("response.status == 200 && response.body.available >= 1")
            );
        }
        other => panic!("expected fetch, got {other:?}"),
    }
    match &r[2].check {
        Check::Fetch(f) => {
            assert_eq!(f.method, HttpMethod::POST);
            assert!(f.body.is_some());
            assert!(f.require.is_none());
        }
        other => panic!("expected fetch, got {other:?}"),
    }
    match &r[3].check {
        Check::Forward(f) => {
            assert!(Arc::ptr_eq(&f.upstream, legacy));
            assert_eq!(f.path, "/payments/confirm");
        }
        other => panic!("expected forward, got {other:?}"),
    }
    // A forward needs no reason: the merchant's endpoint gives its own.
    assert_eq!(r[3].reason, Template::literal(DEFAULT_REASON));
}

/// Credentials in a url are masked as written, decoded, and as the `Authorization: Basic …`
/// value the HTTP client makes of them. A path is no secret, even in a variable holding the
/// whole url (`/api/v1` would be masked in every answer that names it).
#[test]
fn a_urls_credentials_and_secret_path_are_masked() {
    use base64::Engine;
    let dir = default_file(
        "upstreams:\n  hook: { url: \"${HOOK_URL}\" }\n  shop: { url: \"https://${HOST}/payments/confirm\" }\nrules:\n  - { name: a, forward: { upstream: hook, path: /x } }\n  - { name: b, forward: { upstream: shop, path: /x } }\n",
    );
    let url = "http://api%2Duser:p%40ssword1@shop.test/hooks/SECRETTOKEN99";
    let rules = dir.ok_with(&[("HOOK_URL", url), ("HOST", "shop.test")]);
    let set = rules.get("default").unwrap();
    let secrets = |name: &str| -> Vec<String> {
        set.upstreams[name]
            .secrets
            .iter()
            .map(|f| String::from_utf8(f.needle().to_vec()).unwrap())
            .collect()
    };
    let basic = base64::engine::general_purpose::STANDARD.encode("api-user:p@ssword1");
    let mut want = vec![
        url.to_owned(),
        basic,
        "p%40ssword1".to_owned(),
        "api%2Duser".to_owned(),
        "p@ssword1".to_owned(),
        "api-user".to_owned(),
    ];
    want.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    assert_eq!(secrets("hook"), want);
    assert_eq!(secrets("shop"), ["shop.test"]);
}

/// A value put in a url's host is masked, and so is the host as the URL parser writes it (in
/// lower case, punycode, percent-decoded), which errors name (`DNS lookup failed for …`).
#[test]
fn a_secret_in_a_urls_host_is_masked_in_lower_case_too() {
    let dir = default_file(
        "upstreams:\n  shop: { url: \"https://${SHOP_KEY}.shop.test/api\" }\nrules:\n  - { name: a, forward: { upstream: shop, path: /x } }\n",
    );
    for (key, host) in [
        ("K2-vAoDgqmF37", "k2-vaodgqmf37.shop.test"),
        ("상점비밀키값", "xn--"),
    ] {
        let rules = dir.ok_with(&[("SHOP_KEY", key)]);
        let shop = &rules.get("default").unwrap().upstreams["shop"];
        let secrets: Vec<String> = shop
            .secrets
            .iter()
            .map(|f| String::from_utf8_lossy(f.needle()).into_owned())
            .collect();
        assert!(
            secrets
                .iter()
                .any(|s| s.starts_with(host) && s.ends_with(".shop.test")),
            "{host}: {secrets:?}"
        );
        assert!(secrets.iter().any(|s| s == key), "{key}");
    }
    // The user, the port or the path a variable fills in is no host.
    for url in ["http://shop.test:${PORT}", "http://[::1]:${PORT}"] {
        let port = default_file(&format!(
            "upstreams:\n  shop: {{ url: \"{url}\" }}\nrules:\n  - {{ name: a, forward: {{ upstream: shop, path: /x }} }}\n"
        ));
        let rules = port.ok_with(&[("PORT", "48105")]);
        let shop = &rules.get("default").unwrap().upstreams["shop"];
        assert!(
            shop.secrets
                .iter()
                .all(|f| f.needle() != b"shop.test" && f.needle() != b"[::1]"),
            "{url}"
        );
    }
    let path = default_file(
        "upstreams:\n  shop: { url: \"https://${USER_NAME}:x@shop.test/${TOKEN}\" }\nrules:\n  - { name: a, forward: { upstream: shop, path: /x } }\n",
    );
    let rules = path.ok_with(&[("USER_NAME", "someone"), ("TOKEN", "tok-12345")]);
    let shop = &rules.get("default").unwrap().upstreams["shop"];
    assert!(shop.secrets.iter().all(|f| f.needle() != b"shop.test"));
}

/// A variable's value in a url's user name or password is percent-encoded: a password holding
/// `@` or `/` stays the password, and the calls go to the host as written — not to one made of
/// the password's own text, with the credentials.
#[test]
fn a_password_from_a_variable_stays_a_password() {
    let dir = default_file(
        "upstreams:\n  shop: { url: \"http://${SHOP_USER}:${SHOP_PASS}@shop.test/hooks/${HOOK}\" }\nrules:\n  - { name: a, forward: { upstream: shop, path: /x } }\n",
    );
    for password in [
        "Kx9@Zq7Lm2Vt8/w!",
        "hunter2@127.0.0.1:47301/steal",
        "a:b#c?d%41",
    ] {
        let rules = dir.ok_with(&[
            ("SHOP_USER", "shop admin"),
            ("SHOP_PASS", password),
            ("HOOK", "tok-1"),
        ]);
        let shop = &rules.get("default").unwrap().upstreams["shop"];
        let url = reqwest::Url::parse(&shop.url).unwrap();
        assert_eq!(url.host_str(), Some("shop.test"), "{password}");
        assert_eq!(url.path(), "/hooks/tok-1", "{password}");
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .unwrap()
                .into_owned()
        };
        assert_eq!(decode(url.username()), "shop admin");
        assert_eq!(decode(url.password().unwrap()), password);
    }
    // A value ending in a line break (read from a file) is still refused, not sent encoded; a
    // user name with `:` cannot be sent with Basic authentication.
    let errors = dir.errors_with(&[
        ("SHOP_USER", "shop"),
        ("SHOP_PASS", "newline-pass\n"),
        ("HOOK", "tok-1"),
    ]);
    assert!(
        errors.len() == 1
            && errors[0].contains("url has a space, line break or other control character"),
        "{errors:?}"
    );
    let errors = dir.errors_with(&[
        ("SHOP_USER", "ad:min"),
        ("SHOP_PASS", "pass"),
        ("HOOK", "tok-1"),
    ]);
    assert!(
        errors.len() == 1 && errors[0].contains("the user name holds \":\""),
        "{errors:?}"
    );
}

#[test]
fn unset_variables_are_errors_naming_them() {
    let dir = default_file(
        r#"upstreams:
  api:
    url: "${API_URL}"
  shop:
    url: "https://${SHOP_HOST}/v1"
    headers: { Authorization: "Bearer ${SHOP_API_TOKEN}" }
  typo:
    url: http://typo.test
    headers:
      X-Key: "${TYPO_KEY"
rules:
  - name: via-api
    forward: { upstream: api, path: /confirm }
"#,
    );
    assert_eq!(
        dir.errors_with(&[("SHOP_HOST", "shop.test")]),
        [
            dir.at(
                DEFAULT,
                3,
                10,
                r#"upstream "api": url: environment variable API_URL is not set (the proxy reads its environment only when it starts: a variable set later needs a restart; check, test and replay make no calls, so a stand-in value does for them: for a url, one that keeps it a URL, such as http://shop.invalid)"#
            ),
            dir.at(
                DEFAULT,
                6,
                31,
                r#"upstream "shop": header "Authorization": environment variable SHOP_API_TOKEN is not set (the proxy reads its environment only when it starts: a variable set later needs a restart; check, test and replay make no calls, so a stand-in value does for them)"#
            ),
            dir.at(
                DEFAULT,
                10,
                14,
                r#"upstream "typo": header "X-Key": unclosed "${" (expected ${VARIABLE})"#
            ),
            // No "unknown upstream" for `api`: it is defined, and its own error says what is wrong.
        ]
    );
    // Set, everything loads; the variables' values are not part of the rules version.
    let vars = [
        ("API_URL", "http://api.test"),
        ("SHOP_HOST", "shop.test"),
        ("SHOP_API_TOKEN", "t"),
    ];
    dir.write(
        DEFAULT,
        &fs::read_to_string(dir.path().join(DEFAULT))
            .unwrap()
            .replace("${TYPO_KEY\"", "${TYPO_KEY}\""),
    );
    let rules = dir.ok_with(&[vars[0], vars[1], vars[2], ("TYPO_KEY", "k1")]);
    let other = dir.ok_with(&[vars[0], vars[1], vars[2], ("TYPO_KEY", "k2")]);
    assert_eq!(rules.version, other.version);
    let set = rules.get("default").unwrap();
    assert_eq!(set.upstreams["shop"].url, "https://shop.test/v1");
    assert!(set.upstreams["shop"].headers["authorization"].is_sensitive());
    assert!(set.upstreams["typo"].headers["x-key"].is_sensitive());
    assert!(rules.warnings.is_empty(), "{:?}", rules.warnings);

    // Set but empty (an unfilled secret): it loads, with a warning at the header.
    let rules = dir.ok_with(&[vars[0], vars[1], ("SHOP_API_TOKEN", ""), ("TYPO_KEY", "k")]);
    assert_eq!(
        rules.warnings,
        [dir.at(
            DEFAULT,
            6,
            31,
            r#"upstream "shop": header "Authorization": environment variable SHOP_API_TOKEN is set but empty"#
        )]
    );
}

/// A url variable set but empty is named as what to fix (not "not an http:// URL"), and a
/// `$NAME` without braces, sent as written, is a warning where it is written.
#[test]
fn an_empty_url_variable_and_a_variable_without_braces_are_named() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: "${SHOP_API_URL}"
    headers: { Authorization: "Bearer $SHOP_API_TOKEN", X-Price: "$5", X-Ref: "$ref" }
rules:
  - name: confirm
    forward: { upstream: shop, path: /confirm }
"#,
    );
    assert_eq!(
        dir.errors_with(&[("SHOP_API_URL", "")]),
        [dir.at(
            DEFAULT,
            3,
            10,
            r#"upstream "shop": url: environment variable SHOP_API_URL is set but empty"#
        )]
    );
    let rules = dir.ok_with(&[("SHOP_API_URL", "http://shop.test")]);
    assert_eq!(
        rules.warnings,
        [dir.at(
            DEFAULT,
            4,
            31,
            r#"upstream "shop": header "Authorization": $SHOP_API_TOKEN is sent as written; an environment variable is read only as ${SHOP_API_TOKEN}"#
        )]
    );
}

/// `{NAME}` — a variable written like a placeholder, without its `$` — is sent as written: a
/// warning in a header, the hint of the error in a url, as is a url that is only a name.
#[test]
fn a_variable_without_its_dollar_is_named() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
    headers: { Authorization: "Bearer {SHOP_API_TOKEN}", X-Json: "{A}", X-Ok: "${SHOP_API_TOKEN}" }
  braces:
    url: "{SHOP_API_URL}"
  name:
    url: SHOP_API_URL
  host:
    url: "http://{SHOP_HOST}:8080"
  order:
    url: "http://shop.test/{order_id}"
rules:
  - name: confirm
    forward: { upstream: shop, path: /confirm }
"#,
    );
    let bad_url = |upstream: &str, hint: &str| {
        format!(
            r#"upstream "{upstream}": url is not an http:// or https:// URL; an environment variable is read only as ${{SHOP_API_URL}}{hint}"#
        )
    };
    assert_eq!(
        dir.errors_with(&[("SHOP_API_TOKEN", "t0ken-secret")]),
        [
            dir.at(
                DEFAULT,
                6,
                10,
                r#"upstream "braces": url: {SHOP_API_URL} is sent as written; an environment variable is read only as ${SHOP_API_URL}"#
            ),
            dir.at(DEFAULT, 8, 10, &bad_url("name", "")),
            dir.at(
                DEFAULT,
                10,
                10,
                r#"upstream "host": url: {SHOP_HOST} is sent as written; an environment variable is read only as ${SHOP_HOST}"#
            ),
            dir.at(
                DEFAULT,
                12,
                10,
                r#"upstream "order": url: {order_id} is sent as written: an upstream's url takes no placeholders (they go in a fetch's path) and reads environment variables as ${VAR}"#
            ),
        ]
    );
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
    headers: { Authorization: "Bearer {SHOP_API_TOKEN}", X-Json: "{A}", X-Ok: "${SHOP_API_TOKEN}" }
rules:
  - name: confirm
    forward: { upstream: shop, path: /confirm }
"#,
    );
    assert_eq!(
        dir.ok_with(&[("SHOP_API_TOKEN", "t0ken-secret")]).warnings,
        [dir.at(
            DEFAULT,
            4,
            31,
            r#"upstream "shop": header "Authorization": {SHOP_API_TOKEN} is sent as written; an environment variable is read only as ${SHOP_API_TOKEN}"#
        )]
    );
}

/// `${VAR}` names are letters, digits and `_`; anything else is a mistake in the file, said
/// as such rather than looked up (and, were it set, filled in).
#[test]
fn bad_variable_names_are_errors_naming_them() {
    let dir = default_file(
        r#"upstreams:
  api:
    url: "http://${MY-HOST}/"
    headers: { X-Key: "${}" }
rules:
  - name: via-api
    forward: { upstream: api, path: /confirm }
"#,
    );
    assert_eq!(
        dir.errors_with(&[("MY-HOST", "api.test"), ("", "k")]),
        [
            dir.at(
                DEFAULT,
                3,
                10,
                r#"upstream "api": url: invalid variable name "MY-HOST" in ${...}"#
            ),
            dir.at(
                DEFAULT,
                4,
                23,
                r#"upstream "api": header "X-Key": invalid variable name "" in ${...}"#
            ),
        ]
    );
}

#[test]
fn unknown_upstream_references() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
    health: { path: /health }
rules:
  - name: up
    healthy: shp
    reason: x
  - name: stock
    fetch: { upstream: shp, path: /stock }
    reason: x
  - name: confirm
    forward: { upstream: shp, path: /confirm }
"#,
    );
    dir.write(
        "bare.yaml",
        "rules:\n  - name: up\n    healthy: shop\n    reason: x\n",
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                "bare.yaml",
                3,
                14,
                r#"rule "up": unknown upstream "shop", no upstreams are defined in this file"#
            ),
            dir.at(
                DEFAULT,
                7,
                14,
                r#"rule "up": unknown upstream "shp", expected one of shop; did you mean "shop"?"#
            ),
            dir.at(
                DEFAULT,
                10,
                24,
                r#"rule "stock": unknown upstream "shp", expected one of shop; did you mean "shop"?"#
            ),
            dir.at(
                DEFAULT,
                13,
                26,
                r#"rule "confirm": unknown upstream "shp", expected one of shop; did you mean "shop"?"#
            ),
        ]
    );
}

#[test]
fn healthy_needs_an_upstream_with_a_health_probe() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: shop-up
    healthy: shop
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            6,
            14,
            r#"rule "shop-up": upstream "shop" has no health probe; add health: { path: /health } to it"#
        )]
    );
}

/// A fetch body is a mapping (SPEC §9), sent as a JSON object: text or a list is an error.
#[test]
fn a_fetch_body_is_a_mapping() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: text
    fetch: { upstream: shop, method: POST, path: /hold, body: "raw {order_id}" }
    reason: x
  - name: list
    fetch: { upstream: shop, method: PUT, path: /hold, body: [1, "{order_id}"] }
    reason: x
  - name: object
    fetch: { upstream: shop, method: POST, path: /hold, body: { order: "{order_id}" } }
    reason: x
"#,
    );
    let message = |rule: &str, what: &str| {
        format!("rule \"{rule}\": fetch.body is a mapping of fields, sent as a JSON object (body: {{ order: \"{{order_id}}\" }}), not {what}")
    };
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 6, 63, &message("text", "text")),
            dir.at(DEFAULT, 9, 62, &message("list", "a list")),
        ]
    );
}

/// Every text of a fetch body is checked, each error at its placeholder, however deep.
#[test]
fn each_placeholder_error_of_a_fetch_body_is_at_its_place() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: reserve
    fetch:
      upstream: shop
      method: POST
      path: /reserve
      body:
        order: "{order_idd}"
        items:
          - sku: "{payload.sku}"
            qty: "{amountt}"
    reason: x
"#,
    );
    let expected = "expected one of {order_id}, {tx_id}, {amount}, {store_id}";
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 11, 17, &format!("rule \"reserve\": fetch.body: unknown placeholder {{order_idd}} (did you mean {{order_id}}?), {expected}")),
            dir.at(DEFAULT, 13, 19, &format!("rule \"reserve\": fetch.body: unknown placeholder {{payload.sku}}, {expected}")),
            dir.at(DEFAULT, 14, 19, &format!("rule \"reserve\": fetch.body: unknown placeholder {{amountt}} (did you mean {{amount}}?), {expected}")),
        ]
    );
}

#[test]
fn bad_fetch_and_forward_fields() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: get-with-body
    fetch: { upstream: shop, path: /stock, body: { id: "{order_id}" } }
    reason: x
  - name: relative-path
    fetch: { upstream: shop, method: POST, path: "stock/{oder_id}" }
    reason: x
  - name: relative-forward
    forward: { upstream: shop, path: confirm }
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                6,
                50,
                r#"rule "get-with-body": a GET fetch has no body; use method: POST or PUT"#
            ),
            dir.at(
                DEFAULT,
                9,
                50,
                r#"rule "relative-path": fetch.path must start with "/""#
            ),
            // At the placeholder.
            dir.at(
                DEFAULT,
                9,
                57,
                r#"rule "relative-path": fetch.path: unknown placeholder {oder_id} (did you mean {order_id}?), expected one of {order_id}, {tx_id}, {amount}, {store_id}"#
            ),
            dir.at(
                DEFAULT,
                12,
                38,
                r#"rule "relative-forward": forward.path must start with "/""#
            ),
        ]
    );
}

/// Methods are read in lower case too, as rule tests read `get /x`.
#[test]
fn fetch_methods_may_be_lower_case() {
    let dir = default_file(
        "upstreams:\n  shop: { url: \"http://shop.test\" }\nrules:\n  - name: a\n    fetch: { upstream: shop, method: post, path: /a }\n    reason: r\n",
    );
    let rules = dir.ok();
    let Check::Fetch(f) = &rules.get("default").unwrap().rules[0].check else {
        panic!("a fetch rule");
    };
    assert_eq!(f.method, HttpMethod::POST);
}

/// A rule's own mistakes are reported even while the upstream it names is broken (which is
/// reported once, at the upstream).
#[test]
fn a_forward_path_is_checked_while_its_upstream_is_broken() {
    let dir = default_file(
        r#"upstreams:
  shop: { url: "http://shop.test?x" }
rules:
  - name: fw
    forward: { upstream: shop, path: "/confirm/{order_id}" }
"#,
    );
    let errors = dir.errors();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains(r#"upstream "shop": url must not have a query string"#));
    assert!(
        errors[1].starts_with(&dir.at(
            DEFAULT,
            5,
            48,
            r#"rule "fw": forward.path is a fixed path"#
        )),
        "{errors:#?}"
    );
}

/// What a fetch sends is checked for what cannot work: environment variables (read only in
/// upstream settings), the fetch's own answer, headers only the client may set, a fragment.
#[test]
fn what_a_fetch_sends_cannot_hold_what_never_works() {
    let dir = default_file(
        r#"upstreams:
  shop: { url: "http://127.0.0.1:9", headers: { Content-Length: "5" }, health: { path: "/h/${TOKEN}" } }
rules:
  - name: stock
    fetch:
      upstream: shop
      path: "/stock/${SHOP_TOKEN}#frag"
      headers: { X-A: "${order_id}", X-B: "{response.body.a}", Transfer-Encoding: chunked }
    reason: r
"#,
    );
    let env_only = r#"${VAR} reads an environment variable only in an upstream's url and headers, not in what a fetch sends; set it there (under upstreams), where every call of the upstream sends it"#;
    let client_owned = "is set by the HTTP client from the message and the connection; it cannot be set in the rules";
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 2, 49, &format!(r#"upstream "shop": header "Content-Length" {client_owned}"#)),
            dir.at(DEFAULT, 2, 88, r#"upstream "shop": health path: ${VAR} is read only in the upstream's url and headers; the probe sends the upstream's headers (put a key there), or put the variable in the url"#),
            // Each at what it is about: the name, the value, or the `$` or brace in it.
            dir.at(DEFAULT, 7, 13, r##"rule "stock": fetch.path must not hold "#": a fragment is never sent, so what follows it (and the query) would be dropped; write a literal # as %23"##),
            dir.at(DEFAULT, 7, 21, &format!(r#"rule "stock": fetch.path: "${{SHOP_TOKEN}}": {env_only}"#)),
            dir.at(DEFAULT, 8, 24, r#"rule "stock": fetch.headers: "${order_id}": request placeholders are written without "$", like {order_id} (${VAR} reads an environment variable, and only in upstream settings)"#),
            dir.at(DEFAULT, 8, 44, r#"rule "stock": fetch.headers: placeholder {response.body.a} reads this fetch's answer, which is not there yet when its request is sent; use it in the rule's require or reason. Expected one of {order_id}, {tx_id}, {amount}, {store_id}"#),
            dir.at(DEFAULT, 8, 64, &format!(r#"rule "stock": fetch.headers: header "Transfer-Encoding" {client_owned}"#)),
        ]
    );
}

/// Audit: an invalid header name was reported at its value, saying nothing of what a name may
/// hold. It is reported at the name, with the likely fix.
#[test]
fn an_invalid_header_name_is_reported_at_the_name() {
    let dir = default_file(
        r#"upstreams:
  shop: { url: "http://127.0.0.1:9", headers: { "Auth orization": "Bearer x" } }
rules:
  - name: stock
    fetch: { upstream: shop, path: /s, headers: { "X-Note: a": b, 인증: c } }
    reason: r
"#,
    );
    let rule = "a header name holds only ASCII letters, digits and symbols such as - and _, with no spaces";
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 2, 49, &format!(r#"upstream "shop": invalid header name "Auth orization": {rule}; did you mean "Auth-orization"?"#)),
            dir.at(DEFAULT, 5, 51, &format!(r#"rule "stock": fetch.headers: invalid header name "X-Note: a": {rule}; write "X-Note" as the key and what follows the ":" as its value"#)),
            dir.at(DEFAULT, 5, 67, &format!(r#"rule "stock": fetch.headers: invalid header name "인증": {rule}"#)),
        ]
    );
}

/// HTTP header names ignore case: two keys that differ only in case would send one header,
/// whichever the map kept, silently.
#[test]
fn a_header_named_twice_in_two_cases_is_an_error() {
    let dir = default_file(
        r#"upstreams:
  shop: { url: "http://127.0.0.1:9", headers: { X-Api-Key: new, x-api-key: old } }
rules:
  - name: stock
    fetch: { upstream: shop, path: /s, headers: { X-Tenant: a, x-tenant: b } }
    reason: r
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 2, 65, r#"upstream "shop": header "x-api-key" is "X-Api-Key" again (header names ignore case): only one would be sent; keep one"#),
            dir.at(DEFAULT, 5, 64, r#"rule "stock": fetch.headers: "x-tenant" is "X-Tenant" again (header names ignore case): only one would be sent; keep one"#),
        ]
    );
}

#[test]
fn bad_upstream_urls() {
    let dir = default_file(
        r#"upstreams:
  ftp:
    url: ftp://shop.test
  words:
    url: "not a url"
  no-host:
    url: "http://"
  typo:
    url: "htp:/shop.test"
  from-env:
    url: "${SHOP_URL}"
rules:
  - name: limit
    amount: { max: 100 }
    reason: too much
"#,
    );
    // The value may come from a secret, so the message never repeats it.
    let message =
        |name: &str| format!(r#"upstream "{name}": url is not an http:// or https:// URL"#);
    const NO_SCHEME: &str = "; write its scheme too (http://… or https://…)";
    // The variable to fix is named (its value is not).
    const FROM_ENV: &str = " (made from environment variable SHOP_URL: fix its value)";
    // What the URL parser found wrong names no part of the value, which may be a secret.
    let port = default_file(
        "upstreams:\n  api:\n    url: \"${SHOP_URL}\"\nrules:\n  - { name: a, amount: { max: 1 }, reason: x }\n",
    );
    assert_eq!(
        port.errors_with(&[("SHOP_URL", "http://shop.test:99999/secret")]),
        [port.at(
            DEFAULT,
            3,
            10,
            &format!("{}{FROM_ENV}: invalid port number", message("api"))
        )]
    );
    assert_eq!(
        dir.errors_with(&[("SHOP_URL", "shop.test/secret-path")]),
        // In file order, as every error of a file.
        [
            dir.at(
                DEFAULT,
                3,
                10,
                &format!(
                    r#"{}; its scheme "ftp" is neither http nor https"#,
                    message("ftp")
                )
            ),
            dir.at(DEFAULT, 5, 10, &format!("{}{NO_SCHEME}", message("words"))),
            dir.at(
                DEFAULT,
                7,
                10,
                &format!("{}: empty host", message("no-host"))
            ),
            dir.at(
                DEFAULT,
                9,
                10,
                &format!(
                    r#"{}; it begins "htp:", no http:// or https://"#,
                    message("typo")
                )
            ),
            dir.at(
                DEFAULT,
                11,
                10,
                &format!("{}{FROM_ENV}{NO_SCHEME}", message("from-env"))
            ),
        ]
    );
    assert_eq!(
        port.errors_with(&[("SHOP_URL", "htp:/secret")]),
        [port.at(
            DEFAULT,
            3,
            10,
            &format!(
                "{}{FROM_ENV}; its scheme is no http:// or https://",
                message("api")
            )
        )]
    );
    // Audit: a slip in the file's own text was blamed on the variable in the url.
    let slips = default_file(
        "upstreams:\n  a:\n    url: \"htp://${SHOP_URL}/api\"\n  b:\n    url: \"https://${SHOP_URL}:99999/api\"\nrules:\n  - { name: a, amount: { max: 1 }, reason: x }\n",
    );
    assert_eq!(
        slips.errors_with(&[("SHOP_URL", "shop.internal")]),
        [
            slips.at(
                DEFAULT,
                3,
                10,
                &format!(
                    r#"{}; its scheme "htp" is neither http nor https"#,
                    message("a")
                )
            ),
            slips.at(
                DEFAULT,
                5,
                10,
                &format!("{}: invalid port number", message("b"))
            ),
        ]
    );
    // And a variable in a port, an IPv6 address or a scheme is the variable's to fix.
    let parts = default_file(
        "upstreams:\n  a:\n    url: \"http://shop.test:${U_PORT}/api\"\n  b:\n    url: \"http://[${U_V6}]:8080/\"\n  c:\n    url: \"http${U_S}://shop.test\"\nrules:\n  - { name: a, amount: { max: 1 }, reason: x }\n",
    );
    let errors = parts.errors_with(&[("U_PORT", "80a"), ("U_V6", "fe80::1%eth0"), ("U_S", "q")]);
    assert_eq!(errors.len(), 3, "{errors:?}");
    for (e, var) in errors.iter().zip(["U_PORT", "U_V6", "U_S"]) {
        assert!(
            e.contains(&format!(
                "(made from environment variable {var}: fix its value)"
            )),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts

#[test]
fn scripts_load_relative_to_the_rules_directory() {
    let dir = default_file(
        r#"rules:
  - name: vip
    script: scripts/vip.rhai
  - name: dotted
    script: ./scripts/vip.rhai
    reason: 안 됩니다
  - name: again
    script: scripts/vip.rhai
"#,
    );
    dir.write(
        "scripts/vip.rhai",
        "if order_id.starts_with(\"vip-\") { return true; }\namount <= 100000\n",
    );
    let rules = dir.ok();
    let r = &rules.get("default").unwrap().rules;
    // Rules naming the same script share one compiled script.
    let (Check::Script { ast: first, .. }, Check::Script { ast: again, .. }) =
        (&r[0].check, &r[2].check)
    else {
        panic!("script rules: {r:?}");
    };
    assert!(Arc::ptr_eq(first, again));
    assert!(matches!(&r[0].check, Check::Script { path, .. } if path == "scripts/vip.rhai"));
    assert!(matches!(&r[1].check, Check::Script { path, .. } if path == "./scripts/vip.rhai"));
    assert_eq!(r[0].reason, Template::literal(DEFAULT_REASON));
    assert_eq!(r[1].reason, reason("안 됩니다"));
}

/// Positions are the lines an editor shows, also where a line ends with a lone CR (an old Mac
/// editor's, or a stray one in a CRLF file), which Rhai alone would not count.
#[test]
fn script_errors_are_reported_against_the_script() {
    let dir = default_file(
        "rules:\n  - name: vip\n    script: scripts/vip.rhai\n  - name: typo\n    script: scripts/typo.rhai\n",
    );
    dir.write(
        "scripts/vip.rhai",
        "let x = 1;\r\nlet y = 2;\rlet z = );\r\n",
    )
    .write(
        "scripts/typo.rhai",
        "// a typo on line 3\r\rif order_idd == \"x\" { false }\r",
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                "scripts/vip.rhai",
                3,
                9,
                r#"unexpected ')' (script of rule "vip" in default.yaml)"#
            ),
            dir.at(
                "scripts/typo.rhai",
                3,
                4,
                r#"undefined variable: order_idd; did you mean order_id? (script of rule "typo" in default.yaml)"#
            ),
        ]
    );
}

/// The load-time checks' findings in one script, and in one expression, come together, in
/// the order they are written (a syntax error is still Rhai's one error).
#[test]
fn every_slip_the_checks_find_in_a_script_or_expression_comes_at_once() {
    let dir = default_file(
        "rules:\n  - name: vip\n    script: scripts/vip.rhai\n  - name: f\n    require: 'order_id.length < 40 && amount < \"5000\" && api == \"v2\"'\n    reason: x\n",
    );
    dir.write(
        "scripts/vip.rhai",
        "if amount > 1000000 {\n    return \"한도 초과 (${amount}원)\";\n}\nlet n = order_id.length;\namount\n",
    );
    let script = r#" (script of rule "vip" in default.yaml)"#;
    assert_eq!(
        dir.errors(),
        [
            dir.at("scripts/vip.rhai", 2, 12, &format!("${{amount}} is not filled in inside double quotes: Rhai fills in ${{…}} only in a backtick string, so write `…${{amount}}…` with backticks{script}")),
            dir.at("scripts/vip.rhai", 4, 18, &format!("a string has no property length, so reading it fails every request; write order_id.len(){script}")),
            dir.at("scripts/vip.rhai", 5, 1, &format!("this gives a number, which no script may give: a script gives true or () to pass, false to refuse with the rule's reason, or a string to refuse with that string; write a condition, such as amount <= 1000000, or a reason{script}")),
            dir.at(DEFAULT, 5, 24, r#"rule "f": require: invalid expression: a string has no property length, so reading it fails every request; write order_id.len()"#),
            dir.at(DEFAULT, 5, 48, r#"rule "f": require: invalid expression: "5000" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"#),
            dir.at(DEFAULT, 5, 65, r#"rule "f": require: invalid expression: api is never "v2": it is one of "v1", "v2-2024-01-01", "v2-2024-04-25""#),
        ]
    );
}

#[test]
fn script_paths_must_stay_inside_the_rules_directory() {
    let dir = default_file(
        r#"rules:
  - name: up
    script: ../outside.rhai
  - name: absolute
    script: /etc/passwd
  - name: sneaky
    script: scripts/../../outside.rhai
  - name: empty
    script: ""
"#,
    );
    let message = |rule: &str, path: &str| {
        format!(
            r#"rule "{rule}": script path "{path}" must be relative to the rules directory, without "..""#
        )
    };
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 3, 13, &message("up", "../outside.rhai")),
            dir.at(DEFAULT, 5, 13, &message("absolute", "/etc/passwd")),
            dir.at(
                DEFAULT,
                7,
                13,
                &message("sneaky", "scripts/../../outside.rhai")
            ),
            dir.at(
                DEFAULT,
                9,
                13,
                r#"rule "empty": script path is empty; write the script's path, relative to the rules directory (scripts/vip.rhai)"#
            ),
        ]
    );
}

/// `script: |` followed by code is refused on one line that says what `script:` takes.
#[test]
fn script_code_instead_of_a_path() {
    let dir = default_file(concat!(
        "rules:\n",
        "  - name: block\n",
        "    script: |\n",
        "      if amount > 100000 { return \"too much\"; }\n",
        "      true\n",
        "  - name: inline\n",
        "    script: amount < 5000\n",
        "  - name: call\n",
        "    script: is_vip(order_id)\n",
    ));
    let message = |rule: &str| {
        format!(
            r#"rule "{rule}": script takes the path of a .rhai file, relative to the rules directory (scripts/vip.rhai), not the script's code: put the code in that file (one expression fits in require:)"#
        )
    };
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 3, 13, &message("block")),
            dir.at(DEFAULT, 7, 13, &message("inline")),
            dir.at(DEFAULT, 9, 13, &message("call")),
        ]
    );
}

/// `script: |` over a path (YAML keeps the block's line break) names that file.
#[test]
fn a_script_path_in_a_block_is_read_as_a_path() {
    let dir = default_file(
        "rules:\n  - name: vip\n    script: |\n      scripts/vip.rhai\n    reason: x\n",
    );
    dir.write("scripts/vip.rhai", "amount < 5");
    dir.ok();
}

/// A number with separators or a unit in a rule's amount bounds gets the number to write.
#[test]
fn an_amount_bound_written_as_text_gets_the_number_to_write() {
    let dir = default_file(
        "rules:\n  - name: a\n    amount: { min: 55_000, max: 1000원 }\n    reason: x\n",
    );
    let errors = dir.errors();
    assert!(
        errors[0].ends_with(
            r#"invalid type: string "55_000", expected a number; write the number alone: 55000"#
        ),
        "{errors:#?}"
    );
}

#[test]
fn missing_script_file() {
    let dir = default_file("rules:\n  - name: vip\n    script: scripts/missing.rhai\n");
    let file = dir.path().join("scripts/missing.rhai");
    let io_error = fs::read_to_string(&file).unwrap_err();
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            3,
            13,
            &format!(
                r#"rule "vip": cannot read script "scripts/missing.rhai": {io_error} (looked for {}; a script path is relative to the rules directory)"#,
                file.display()
            )
        )]
    );
}

/// A script path written from where the proxy was started (`concert/scripts/vip.rhai`) or
/// with a slip names the script that was probably meant.
#[test]
fn a_missing_script_names_the_one_probably_meant() {
    let dir = default_file(
        "rules:\n  - name: a\n    script: concert/scripts/vip.rhai\n  - name: b\n    script: scripts/vip_limit.rhai\n  - name: c\n    script: scripts/nothing-like-it.rhai\n  - name: d\n    script: vip.rhai\n  - name: e\n    script: scripts/deep.rhai\n  - name: f\n    script: lib/hour.rhai\n",
    );
    dir.write("scripts/vip.rhai", "true\n")
        .write("scripts/hours.rhai", "true\n")
        .write("scripts/sub/deep.rhai", "true\n");
    let errors = dir.errors();
    assert_eq!(errors.len(), 6, "{errors:#?}");
    let meant = |i: usize, script: &str| {
        assert!(
            errors[i].ends_with(&format!("; did you mean \"{script}\"?)")),
            "{}",
            errors[i]
        );
    };
    // Written from where the proxy was started; a slip; no script like it.
    meant(0, "scripts/vip.rhai");
    meant(1, "scripts/vip.rhai");
    assert!(
        errors[2].ends_with("relative to the rules directory)"),
        "{}",
        errors[2]
    );
    // The folder left out; another folder; the file name a slip away in another folder.
    meant(3, "scripts/vip.rhai");
    meant(4, "scripts/sub/deep.rhai");
    meant(5, "scripts/hours.rhai");
}

/// A script file named on a Mac has its Hangul decomposed (NFD): it looks like the name the
/// rule writes (NFC), and the error says what differs.
#[test]
fn a_script_named_in_another_unicode_form_is_told() {
    let dir = default_file("rules:\n  - name: a\n    script: scripts/한도.rhai\n");
    let decomposed: String =
        unicode_normalization::UnicodeNormalization::nfd("scripts/한도.rhai").collect();
    dir.write(&decomposed, "true\n");
    let errors = dir.errors();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].ends_with(&format!(" (\"{decomposed}\" is there, the same name in another Unicode form: its Hangul decomposed, as macOS writes file names; rename the file, typing its name anew, or give scripts ASCII names)")),
        "{}",
        errors[0]
    );
}

/// A script path written with Windows' `\` (a file name of its own here) says to write `/`.
#[test]
fn a_script_path_with_backslashes_says_to_write_slashes() {
    let dir = default_file("rules:\n  - name: a\n    script: scripts\\vip.rhai\n");
    dir.write("scripts/vip.rhai", "true\n");
    let errors = dir.errors();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].ends_with(" (folders are separated by /, not \\: write scripts/vip.rhai)"),
        "{}",
        errors[0]
    );
}

/// Paths that share only their folder are no slip of each other: `scripts/vip_list.rhai` is
/// not `scripts/deal.rhai`.
#[test]
fn a_missing_script_sharing_only_its_folder_with_another_names_none() {
    let dir = default_file("rules:\n  - name: a\n    script: scripts/vip_list.rhai\n");
    dir.write("scripts/deal.rhai", "true\n");
    let errors = dir.errors();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].ends_with("relative to the rules directory)"),
        "{}",
        errors[0]
    );
}

/// A script (or ruleset) that is no regular file is never opened: a FIFO would wait for a
/// writer and hang the reload, and a link to a device never ends. Nor is a file too large
/// for rules read.
#[cfg(unix)]
#[test]
fn a_script_that_is_no_file_or_too_large_is_refused_without_reading_it() {
    let dir = default_file(
        "rules:\n  - name: fifo\n    script: scripts/f.rhai\n  - name: zero\n    script: scripts/zero.rhai\n  - name: big\n    script: scripts/big.rhai\n",
    );
    fs::create_dir_all(dir.path().join("scripts")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.path().join("scripts/f.rhai"))
        .status();
    assert!(made.is_ok_and(|s| s.success()));
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("scripts/zero.rhai")).unwrap();
    let big = format!("{}true\n", "// padding\n".repeat(100_000));
    dir.write("scripts/big.rhai", &big);
    let started = std::time::Instant::now();
    let errors = dir.errors();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let not_a_file = "not a regular file (a FIFO, socket or device), never read";
    assert_eq!(
        errors,
        [
            dir.at(DEFAULT, 3, 13, &format!(r#"rule "fifo": cannot read script "scripts/f.rhai": {not_a_file}"#)),
            dir.at(DEFAULT, 5, 13, &format!(r#"rule "zero": cannot read script "scripts/zero.rhai": {not_a_file}"#)),
            dir.at(
                DEFAULT,
                7,
                13,
                &format!(
                    r#"rule "big": cannot read script "scripts/big.rhai": {} bytes, larger than the 1024 KiB a rules file or script may hold"#,
                    big.len()
                )
            ),
        ]
    );
    // The version never opens them either.
    assert_eq!(dir.version(), dir.version());
}

// ---------------------------------------------------------------------------------------------
// Ruleset files

#[test]
fn only_yaml_files_directly_in_the_directory_are_rulesets() {
    let dir = RulesDir::new();
    let broken = "rules: [ this is not a ruleset\n";
    dir.write(DEFAULT, ONE_RULE)
        .write("shop_v2.yaml", ONE_RULE)
        .write("a-b.yaml", ONE_RULE)
        .write("notes.yml", broken)
        .write("README.md", broken)
        .write("scripts/vip.rhai", "true\n")
        .write("scripts/vip.yaml", broken)
        .write("tests/default.yaml", broken)
        .write("sub/inner.yaml", broken)
        .write("dir.yaml/inner.txt", broken)
        .write("default.yaml~", broken);
    let rules = dir.ok();
    assert_eq!(
        rules.rulesets.keys().collect::<Vec<_>>(),
        ["a-b", "default", "shop_v2"]
    );
}

#[test]
fn hidden_files_are_ignored() {
    let dir = RulesDir::new();
    let broken = "rules: [ this is not a ruleset\n";
    dir.write(DEFAULT, ONE_RULE)
        .write(".draft.yaml", broken)
        .write(".yaml", broken)
        .write(".#default.yaml", broken);
    let rules = dir.ok();
    assert_eq!(rules.rulesets.keys().collect::<Vec<_>>(), ["default"]);
}

/// A wrong `--rules` path or a deploy that emptied the directory must not go live (or pass
/// `check`): with no ruleset every payment would get 404.
#[test]
fn a_directory_without_rulesets_does_not_load() {
    // Also a file saved by Notepad with Explorer hiding extensions: `.yaml.txt`.
    for misnamed in ["default.yml", "default.yaml.txt"] {
        let dir = RulesDir::new();
        dir.write("notes.md", "# rules live elsewhere\n")
            .write("tests/default.yaml", "ruleset: default\ncases: []\n")
            .write(misnamed, ONE_RULE);
        // The misnamed file, which is likely why, is named in the error itself (the load's
        // warnings are not printed when it fails).
        let message = format!(
            "no rulesets: no *.yaml rule file directly in this directory, so every confirm request would be refused with 404; {}: not a ruleset and not read: only files ending in \".yaml\" (lower case) are rulesets (rename it to default.yaml to load it)",
            dir.path().join(misnamed).display()
        );
        assert_eq!(
            dir.errors(),
            [format!("{}: {message}", dir.path().display())]
        );
    }
}

#[test]
fn misnamed_yaml_files_are_told_apart() {
    use std::path::Path;
    for misnamed in ["a.yml", "a.YAML", "a.Yml", "a.yaml.txt", "a.YML.TXT"] {
        assert!(
            super::super::is_misnamed_yaml(Path::new(misnamed)),
            "{misnamed}"
        );
    }
    for other in [
        "a.yaml",
        "a.txt",
        "yaml",
        "a.rhai",
        "a.yaml~",
        "notes.txt",
        ".yml",
    ] {
        assert!(!super::super::is_misnamed_yaml(Path::new(other)), "{other}");
    }
}

#[test]
fn bad_ruleset_names_are_errors() {
    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE)
        .write("bad name.yaml", "")
        .write("ruleset.v2.yaml", "")
        .write("규칙.yaml", "");
    let message = r#"not a ruleset name: the name before ".yaml" may only hold letters (a-z, A-Z), digits, "-" and "_" (it is the ruleset's name in /confirm/{ruleset})"#;
    assert_eq!(message, BAD_RULESET_NAME);
    // At the start of the file, like every other error of a file.
    assert_eq!(
        dir.errors(),
        [
            dir.at("bad name.yaml", 1, 1, message),
            dir.at("ruleset.v2.yaml", 1, 1, message),
            dir.at("규칙.yaml", 1, 1, message),
        ]
    );
}

/// Requests for a ruleset that does not exist are counted and logged as `unknown`: a ruleset
/// of that name would mix its own decisions into them.
#[test]
fn the_ruleset_name_unknown_is_reserved() {
    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE)
        .write("unknown.yaml", ONE_RULE)
        .write("Unknown.yaml", ONE_RULE);
    assert_eq!(
        dir.errors(),
        [dir.at(
            "unknown.yaml",
            1,
            1,
            r#""unknown" is reserved: metrics, logs and the decision log count requests for a ruleset that does not exist under ruleset="unknown"; give this ruleset another name"#
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// Rules version

#[test]
fn rules_version_tracks_every_file_but_hidden_ones() {
    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE)
        .write("scripts/vip.rhai", "true\n")
        .write("tests/default.yaml", "cases: []\n");
    let first = dir.version();
    assert_eq!(first.len(), 12);
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()), "{first}");
    assert_eq!(dir.version(), first, "stable across calls");
    assert_eq!(dir.ok().version, first);

    dir.write(".notes", "hidden")
        .write("scripts/.vip.rhai.swp", "editor state")
        .write("default.yaml~", "backup");
    assert_eq!(dir.version(), first, "hidden and backup files do not count");

    let mut seen = vec![first];
    for (file, content) in [
        (DEFAULT, &format!("{ONE_RULE}# edited\n")[..]),
        ("scripts/vip.rhai", "false\n"),
        ("tests/default.yaml", "cases: [] # edited\n"),
        ("tests/more.yaml", "cases: []\n"),
    ] {
        dir.write(file, content);
        let v = dir.version();
        assert!(!seen.contains(&v), "{file}: version {v} did not change");
        seen.push(v);
    }
    // Files the loader never reads (a decision log kept next to the rules, notes) do not count.
    dir.write("notes.txt", "anything")
        .write("decisions.jsonl", "{}\n");
    assert_eq!(dir.version(), seen[4]);
    // Back to old content, back to the old version: it is a content hash, not a counter.
    fs::remove_file(dir.path().join("tests/more.yaml")).unwrap();
    assert_eq!(dir.version(), seen[3]);
    // A directory named like a ruleset (which the load warns about) counts by its name.
    fs::create_dir(dir.path().join("dir.yaml")).unwrap();
    let with_dir = dir.version();
    assert_ne!(with_dir, seen[3]);
    fs::remove_dir(dir.path().join("dir.yaml")).unwrap();
    assert_eq!(dir.version(), seen[3]);
    // So does a FIFO, which is never opened (the version would wait for a writer).
    #[cfg(unix)]
    {
        let fifo = dir.path().join("pipe.yaml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
        assert_ne!(dir.version(), seen[3]);
    }
}

/// Symlinked directories are followed, so a link back up (`scripts/all -> ..`) makes a loop:
/// each directory is read once instead of failing the load (the kernel refuses paths through
/// too many links). Audit: every link was walked to eight levels, so four links back up
/// (`l1 -> .` … `l4 -> .`) took 26 s a look, and a link to `/` held every reload, and start-up,
/// for good; a tree that large is refused, saying why.
#[cfg(unix)]
#[test]
fn a_symlink_loop_in_the_rules_directory_still_loads() {
    use std::os::unix::fs::symlink;

    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE)
        .write("scripts/vip.rhai", "true\n");
    symlink("..", dir.path().join("scripts/all")).unwrap();
    for link in ["l1", "l2", "l3", "l4"] {
        symlink(".", dir.path().join(link)).unwrap();
    }
    let rules = dir.ok();
    assert_eq!(rules.version, dir.version());

    let large = tempfile::tempdir().unwrap();
    for i in 0..20_001 {
        fs::File::create(large.path().join(i.to_string())).unwrap();
    }
    symlink(large.path(), dir.path().join("root")).unwrap();
    let errors = dir.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(
            "holds more than 20000 entries: a symlink to a large tree (/, a home directory)?"
        ),
        "{errors:?}"
    );
}

#[cfg(unix)]
#[test]
fn rules_version_follows_a_kubernetes_configmap_layout() {
    use std::os::unix::fs::symlink;

    // What a ConfigMap volume looks like: timestamped data dirs, `..data` pointing at the
    // current one, and the visible names as symlinks through `..data`.
    let dir = RulesDir::new();
    let v1 = "rules:\n  - name: limit\n    amount: { max: 100 }\n    reason: x\n";
    dir.write("..2026_01_01_00_00_00.1/default.yaml", v1);
    symlink("..2026_01_01_00_00_00.1", dir.path().join("..data")).unwrap();
    symlink("..data/default.yaml", dir.path().join(DEFAULT)).unwrap();

    let rules = dir.ok();
    assert_eq!(rules.rulesets.keys().collect::<Vec<_>>(), ["default"]);
    assert_eq!(rules.rule_count(), 1);
    let first = dir.version();
    assert_eq!(rules.version, first);

    // The same files in a plain directory have the same version: only visible names count.
    let plain = RulesDir::new();
    plain.write(DEFAULT, v1);
    assert_eq!(plain.version(), first);

    // An update: a new data dir, `..data` swapped atomically, the old dir removed.
    let v2 = format!("{v1}  - name: more\n    amount: {{ min: 1 }}\n    reason: y\n");
    dir.write("..2026_01_02_00_00_00.2/default.yaml", &v2);
    symlink("..2026_01_02_00_00_00.2", dir.path().join("..data_tmp")).unwrap();
    fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    fs::remove_dir_all(dir.path().join("..2026_01_01_00_00_00.1")).unwrap();

    let second = dir.version();
    assert_ne!(second, first);
    assert_eq!(dir.version(), second);
    let rules = dir.ok();
    assert_eq!(rules.version, second);
    assert_eq!(rules.rule_count(), 2);
}

/// Some Windows editors start UTF-8 files with a byte-order mark; Rhai stopped at it with
/// "unexpected '\u{feff}'" at 1:1.
#[test]
fn a_byte_order_mark_is_no_text() {
    let dir = RulesDir::new();
    dir.write(
        DEFAULT,
        "\u{feff}rules:\n  - name: vip\n    script: scripts/vip.rhai\n    reason: no\n",
    )
    .write("scripts/vip.rhai", "\u{feff}amount < 1000000\n");
    dir.load_with(&[]).expect("files with a BOM load");
}

/// `${order_id}` in what a fetch sends was sent as a literal `$` before the order id: `${…}`
/// reads the environment, and only in upstream settings.
#[test]
fn an_environment_style_placeholder_in_a_fetch_is_an_error() {
    let dir = default_file(
        r#"upstreams:
  shop: { url: "http://shop.invalid" }
rules:
  - name: stock
    fetch: { upstream: shop, path: "/api/stock/${order_id}" }
    reason: x
  - name: hold
    fetch: { upstream: shop, method: POST, path: /hold, body: { id: "${tx_id}" } }
    reason: x
"#,
    );
    let message = |rule: &str, field: &str, name: &str| {
        format!(
            "rule \"{rule}\": fetch.{field}: \"${{{name}}}\": request placeholders are written without \"$\", like {{{name}}} (${{VAR}} reads an environment variable, and only in upstream settings)"
        )
    };
    let errors = dir.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].ends_with(&message("stock", "path", "order_id")),
        "{errors:?}"
    );
    assert!(errors[1].contains("${tx_id}"), "{errors:?}");
}

/// A block scalar (`reason: >`) ends with a line break, which the buyer would see in the
/// payment window; reasons and `error_reason` are kept without it.
#[test]
fn a_reason_written_as_a_block_has_no_trailing_line_break() {
    let dir = default_file(
        "settings:\n  error_reason: |\n    잠시 후 다시 시도해 주세요.\nrules:\n  - name: limit\n    amount: { max: 100 }\n    reason: >\n      1회 결제 한도를\n      초과했습니다\n",
    );
    let rules = dir.ok();
    let set = rules.get("default").unwrap();
    assert_eq!(set.rules[0].reason, reason("1회 결제 한도를 초과했습니다"));
    assert_eq!(
        set.settings.error_reason,
        reason("잠시 후 다시 시도해 주세요.")
    );
}

/// A ruleset linked to a file outside the rules directory that is not there (a release not
/// unpacked yet, a volume not mounted) is an error, so that the running rules stay: taken as a
/// removed ruleset, every payment to its URL got 404 and the reload counted as applied. A link
/// that stays inside (Kubernetes' `..data`) is still a removed ruleset.
#[cfg(unix)]
#[test]
fn a_ruleset_linked_outside_to_a_missing_file_is_an_error() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("v2/default.yaml");
    for link in [target.clone(), PathBuf::from("../elsewhere/default.yaml")] {
        let dir = RulesDir::new();
        dir.write("shop.yaml", ONE_RULE);
        symlink(&link, dir.path().join(DEFAULT)).unwrap();
        let errors = dir.errors();
        assert_eq!(
            errors,
            [format!(
                "{}:1:1: a symlink to {}, which does not exist; a ruleset linked from outside the rules directory is not taken as removed while its target is missing (remove the link to remove the ruleset)",
                dir.path().join(DEFAULT).display(),
                link.display()
            )]
        );
    }
    // Through a link inside that leads out: `current` a link to a release not there.
    let dir = RulesDir::new();
    dir.write("shop.yaml", ONE_RULE);
    symlink(outside.path().join("v3"), dir.path().join("current")).unwrap();
    symlink("current/default.yaml", dir.path().join(DEFAULT)).unwrap();
    assert!(dir.errors()[0].contains("a ruleset linked from outside the rules directory"));
    let dir = RulesDir::new();
    dir.write("shop.yaml", ONE_RULE);
    symlink("..2026_12_07", dir.path().join("..data")).unwrap();
    symlink("..data/default.yaml", dir.path().join(DEFAULT)).unwrap();
    symlink("./sub/../gone.yaml", dir.path().join("old.yaml")).unwrap();
    assert_eq!(dir.ok().rulesets.keys().collect::<Vec<_>>(), ["shop"]);
}

/// A ruleset file that is a loop of links is an error, the running rules staying: a trial's
/// loop was taken for a removed ruleset ("a symlink to shop.yaml, which does not exist"), its
/// URL answering 404. A chain ending in a missing file says the end is missing.
#[cfg(unix)]
#[test]
fn a_ruleset_that_is_a_loop_of_links_is_an_error() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE);
    symlink("shop.yaml", dir.path().join("shop.yaml")).unwrap();
    let errors = dir.errors();
    assert_eq!(
        errors,
        [format!(
            "{}:1:1: a symlink to shop.yaml, which leads back to itself (a loop of links); point it at the file",
            dir.path().join("shop.yaml").display()
        )]
    );
    // Through a file outside and back.
    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE);
    let ext = outside.path().join("ext.yaml");
    symlink(dir.path().join("shop.yaml"), &ext).unwrap();
    symlink(&ext, dir.path().join("shop.yaml")).unwrap();
    assert!(
        dir.errors()[0]
            .ends_with("which leads back to itself (a loop of links); point it at the file"),
        "{:?}",
        dir.errors()
    );
    // A chain whose end is missing names the first link and says the end is missing.
    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE);
    symlink("gone.yaml", dir.path().join(".hop.yaml")).unwrap();
    symlink(".hop.yaml", dir.path().join("shop.yaml")).unwrap();
    let warning = format!(
        "{}: not read: a symlink to .hop.yaml, a link to a file that does not exist",
        dir.path().join("shop.yaml").display()
    );
    let rules = dir.ok();
    assert!(rules.warnings.contains(&warning), "{:?}", rules.warnings);
}

/// What a shared volume can hold next to the rules: a root-only `lost+found`, dangling links
/// (a ConfigMap key being removed, a link to a file someone deleted). None of it may stop a
/// load, and a file the rules do need is named with what is wrong with it.
#[cfg(unix)]
#[test]
fn unreadable_and_dangling_entries_do_not_block_the_load() {
    use std::os::unix::fs::{symlink, PermissionsExt};

    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE).write("lost+found/x", "");
    let lost = dir.path().join("lost+found");
    // As root (CI) the directory stays readable; as anyone else this is the reported case.
    fs::set_permissions(&lost, fs::Permissions::from_mode(0o000)).unwrap();
    symlink("gone.txt", dir.path().join("notes.txt")).unwrap();
    symlink("gone.rhai", dir.path().join("old.rhai")).unwrap();
    symlink("gone.yaml", dir.path().join("shop.yaml")).unwrap();
    fs::create_dir(dir.path().join("events.yaml")).unwrap();
    let rules = dir.ok();
    fs::set_permissions(&lost, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(rules.rulesets.keys().collect::<Vec<_>>(), ["default"]);
    assert_eq!(rules.version, dir.version());
    for (file, why) in [
        ("shop.yaml", "a symlink to gone.yaml, which does not exist"),
        ("events.yaml", "a directory, not a file (a container's bind mount of a file that did not exist on the host creates one)"),
    ] {
        let warning = format!("{}: not read: {why}", dir.path().join(file).display());
        assert!(rules.warnings.contains(&warning), "{:?}", rules.warnings);
    }

    // The dangling ruleset's target appearing changes the version (and so reloads).
    let before = dir.version();
    dir.write("gone.yaml", ONE_RULE);
    assert_ne!(dir.version(), before);
    assert_eq!(
        dir.ok().rulesets.keys().collect::<Vec<_>>(),
        ["default", "gone", "shop"]
    );
}

#[cfg(unix)]
#[test]
fn a_dangling_script_link_is_named_with_its_target() {
    use std::os::unix::fs::symlink;

    let dir = default_file("rules:\n  - name: vip\n    script: scripts/vip.rhai\n    reason: no\n");
    fs::create_dir_all(dir.path().join("scripts")).unwrap();
    symlink("/nowhere/vip.rhai", dir.path().join("scripts/vip.rhai")).unwrap();
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            3,
            13,
            r#"rule "vip": cannot read script "scripts/vip.rhai": a symlink to /nowhere/vip.rhai, which does not exist"#
        )]
    );
}

/// A fetch rule with `mode: off` never runs, so its answer is never in `fetched`: reading it
/// is refused like a name that is not there, except by a rule that is off too.
#[test]
fn fetched_names_no_fetch_rule_that_is_off() {
    let dir = default_file(
        r#"upstreams:
  shop: { url: "http://shop.test" }
rules:
  - name: stock
    fetch: { upstream: shop, path: /stock }
    mode: off
    reason: r
  - name: limits
    fetch: { upstream: shop, path: /limits }
    mode: shadow
    reason: r
  - name: in-stock
    require: 'fetched["stock"].body.left > 0'
    reason: r
  - name: stock-trial
    require: 'fetched.stock.body.left > 0 && fetched["limits"] != ()'
    mode: shadow
    reason: r
  - name: stock-off
    require: 'fetched["stock"].body.left > 0'
    mode: off
    reason: r
  - name: typo
    require: 'fetched["stok"] != ()'
    reason: r
  - name: scripted
    script: check.rhai
"#,
    );
    dir.write("check.rhai", "fetched[\"stock\"] != ()\n");
    let off = r#"fetched["stock"]: the fetch rule "stock" has mode: off, so it never runs and its answer is never there; turn it on (mode: enforce or shadow), or turn this rule off too"#;
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 13, 23, &format!(r#"rule "in-stock": require: invalid expression: {off}"#)),
            dir.at(DEFAULT, 16, 23, &format!(r#"rule "stock-trial": require: invalid expression: {off}"#)),
            // No did-you-mean for a rule that is off.
            dir.at(DEFAULT, 24, 23, r#"rule "typo": require: invalid expression: fetched["stok"]: no fetch rule "stok" before this rule"#),
            dir.at("check.rhai", 1, 9, &format!("{off} (script of rule \"scripted\" in default.yaml)")),
        ]
    );
}

/// An enforced rule reading a shadow rule's answer makes the trial decide payments: a
/// warning, once per name, at the expression or the rule's `script:`; shadow and off readers
/// are not warned about.
#[test]
fn an_enforced_rule_reading_a_shadow_rules_answer_is_warned_about() {
    let dir = default_file(
        r#"upstreams:
  shop: { url: "http://shop.test" }
rules:
  - name: trial
    fetch: { upstream: shop, path: /stock }
    mode: shadow
    reason: r
  - name: stock
    fetch: { upstream: shop, path: /stock }
    reason: r
  - name: uses-trial
    require: 'fetched["trial"].body.left > 0 && fetched.trial.status == 200 && fetched["stock"] != ()'
    reason: r
  - name: trial-too
    require: 'fetched["trial"] != ()'
    mode: shadow
    reason: r
  - name: off-too
    require: 'fetched["trial"] != ()'
    mode: off
    reason: r
  - name: scripted
    script: check.rhai
"#,
    );
    dir.write("check.rhai", "fetched[\"trial\"] != ()\n");
    let rules = dir.ok();
    let warning = r#"fetched["trial"] is the answer of a shadow rule, read by an enforced rule: the trial decides payments after all, and when it is cut off at half the deadline its answer is missing and on_error decides; make "trial" enforced, or let this rule make the call itself"#;
    assert_eq!(
        rules.warnings,
        [
            dir.at(DEFAULT, 12, 14, warning),
            dir.at(DEFAULT, 23, 13, warning)
        ]
    );
}

/// A trial's `require` read `payload.custom_data.tier`, which fails on every payment without
/// `custom_data` (on_error refused them all): a warning naming the read and how to decide
/// those payments. `?.`, a field the expression tests on its own or the rule's `when` tests,
/// a read inside a `try` block, and a rule that is off are not warned about, nor is V2's
/// `data`; a method on the field is a read (`payload.basket.len()`), and so is one in `catch`
/// and one through brackets (`payload["shipping"]["zip"]`). An earlier enforced rule whose
/// `require` starts with `"K" in payload` guards K for the rules after it; one with a `when`,
/// or one that lets a payment without K pass, does not.
#[test]
fn a_field_read_inside_a_payload_field_a_payment_may_lack_is_warned_about() {
    let dir = default_file(
        r#"rules:
  - name: blocked
    require: 'payload.custom_data.tier != "blocked" && payload.custom_data.tier != "x"'
    reason: r
  - name: indexed
    require: 'payload.extra["vip"] != true'
    reason: r
  - name: guarded
    require: '!("meta" in payload) || payload.meta.ok'
    reason: r
  - name: elvis
    require: 'payload.custom_data?.tier != "blocked" && payload.data.paymentId != "x"'
    reason: r
  - name: tested
    require: 'payload.opts == () || payload.opts.ok'
    reason: r
  - name: counted
    require: 'payload.basket.len() > 0'
    reason: r
  - name: when-guarded
    when: '"member" in payload'
    require: 'payload.member.level > 1'
    reason: r
  - name: off
    mode: off
    require: 'payload.gone.x == 1'
    reason: r
  - name: scripted
    script: check.rhai
  - name: caught
    script: caught.rhai
  - name: bracketed
    require: 'payload["shipping"]["zip"] != "0" && payload["extra"].vip != true'
    reason: r
  - name: bracket-tested
    require: 'payload["gift"] == () || payload["gift"].wrap'
    reason: r
  - name: member-needed
    require: '"member" in payload && "promo" in payload && amount > 0'
    reason: r
  - name: promo
    require: 'payload.promo.code != "x" && payload.member.id != "y"'
    reason: r
  - name: maybe-needed
    when: 'amount > 5'
    require: '"ref" in payload'
    reason: r
  - name: half-needed
    require: '!("note" in payload) || payload.note.ok'
    reason: r
  - name: ref
    require: 'payload.ref.id != "x" && payload.note.id != "y"'
    reason: r
"#,
    );
    dir.write("check.rhai", "let x = 1;\npayload.buyer.age >= 19\n")
        .write("caught.rhai", "if payload.coupon?.code != () { return payload.coupon.code != \"x\"; }\ntry { return payload.card.kind != \"gift\"; } catch (e) { return payload.wallet.kind; }\n");
    let rules = dir.ok();
    let warning = |read: &str, field: &str| {
        format!("{read} fails on every payment whose body has no {field}, and on_error decides; to decide those payments here, test it first (\"{field}\" in payload && …) or read it with ?. (payload.{field}?…), which gives () for them — and () != \"x\" is true")
    };
    assert_eq!(
        rules.warnings,
        [
            dir.at(
                DEFAULT,
                3,
                14,
                &warning("payload.custom_data.tier", "custom_data")
            ),
            dir.at(DEFAULT, 6, 14, &warning("payload.extra[\"vip\"]", "extra")),
            dir.at(DEFAULT, 18, 14, &warning("payload.basket.len()", "basket")),
            dir.at(
                DEFAULT,
                29,
                13,
                &format!(
                    "check.rhai, line 2: {}",
                    warning("payload.buyer.age", "buyer")
                )
            ),
            dir.at(
                DEFAULT,
                31,
                13,
                &format!(
                    "caught.rhai, line 2: {}",
                    warning("payload.wallet.kind", "wallet")
                )
            ),
            dir.at(
                DEFAULT,
                33,
                14,
                &warning("payload[\"shipping\"][\"zip\"]", "shipping")
            ),
            dir.at(DEFAULT, 33, 14, &warning("payload[\"extra\"].vip", "extra")),
            // Not promo's reads: member-needed refuses every payment without either field.
            dir.at(DEFAULT, 52, 14, &warning("payload.ref.id", "ref")),
            dir.at(DEFAULT, 52, 14, &warning("payload.note.id", "note")),
        ]
    );
}

/// A shadow rule is taken for a dry run, but a forward or a POST/PUT fetch reaches the
/// merchant all the same: a warning at its key; a shadow GET fetch is no side effect.
#[test]
fn a_shadow_call_that_may_change_something_at_the_merchant_is_warned_about() {
    let dir = default_file(
        r#"upstreams:
  shop: { url: "http://shop.test" }
rules:
  - name: trial-stock
    fetch: { upstream: shop, path: /stock }
    mode: shadow
    reason: r
  - name: trial-reserve
    fetch: { upstream: shop, method: PUT, path: /reserve }
    mode: shadow
    reason: r
  - name: trial-confirm
    mode: shadow
    forward: { upstream: shop, path: /confirm }
  - name: reserve
    fetch: { upstream: shop, method: POST, path: /reserve }
    reason: r
"#,
    );
    let rules = dir.ok();
    let side_effects = "is still sent to the merchant, which may act on it (reserve stock, confirm the order); only its answer is ignored; to try it without side effects, use a rule test with canned answers (confirm-proxy test) or eval --dry-run";
    assert_eq!(
        rules.warnings,
        [
            dir.at(
                DEFAULT,
                9,
                12,
                &format!(r#"rule "trial-reserve": a shadow PUT fetch {side_effects}"#)
            ),
            dir.at(
                DEFAULT,
                14,
                14,
                &format!(r#"rule "trial-confirm": a shadow forward {side_effects}"#)
            ),
        ]
    );
}

/// A ruleset that approves on error, with a rule that asks the merchant to act: a call the
/// deadline stops approves the payment unasked (the ruleset's `on_error` decides it, never the
/// rule's), warned about at `on_error`. Shadow calls and GETs do not count.
#[test]
fn approving_on_error_beside_a_call_that_acts_at_the_merchant_is_warned_about() {
    let warned = |rules: &str| {
        let dir = default_file(&format!(
            "settings:\n  on_error: approve\nupstreams:\n  shop: {{ url: \"http://shop.test\" }}\nrules:\n{rules}"
        ));
        dir.ok().warnings.clone()
    };
    let with = warned(
        "  - { name: stock, fetch: { upstream: shop, path: /stock }, reason: r }\n  - { name: confirm, forward: { upstream: shop, path: /confirm }, on_error: reject }\n",
    );
    assert_eq!(with.len(), 1, "{with:?}");
    assert!(
        with[0].ends_with(":2:13: settings.on_error: approve with rule \"confirm\", which asks the merchant to act (a forward, or a POST/PUT fetch): when the deadline stops that call (not sent, reached too close to the deadline; or its answer not in by then), the payment is approved without the merchant's answer, whatever the rule's own on_error says; use on_error: reject unless approving then is what you want"),
        "{with:?}"
    );
    let without = warned(
        "  - { name: stock, fetch: { upstream: shop, path: /stock }, reason: r }\n  - { name: trial, fetch: { upstream: shop, method: POST, path: /r }, mode: shadow, reason: r }\n  - { name: limit, amount: { max: 10 }, reason: r }\n",
    );
    assert!(
        without.iter().all(|w| !w.contains("settings.on_error")),
        "{without:?}"
    );
}

/// `fetched` holds the answers of earlier fetch rules; any other name reads `()` on every
/// request, so a `require` on it refuses every payment. Named at the key, in expressions and
/// scripts alike.
#[test]
fn fetched_names_an_earlier_fetch_rule() {
    let dir = default_file(
        r#"upstreams:
  shop: { url: "http://shop.test" }
rules:
  - name: stock
    fetch: { upstream: shop, path: /stock }
    reason: r
  - name: limit
    amount: { max: 100 }
    reason: r
  - name: typo
    require: 'fetched["stok"].body.left > 0'
    reason: r
  - name: local
    require: fetched.limit != ()
    reason: r
  - name: ahead
    when: 'fetched["later"] == ()'
    require: 'true'
    reason: r
  - name: fine
    require: 'fetched["stock"].body.left > 0 && fetched.stock.status == 200'
    reason: r
  - name: scripted
    script: check.rhai
  - name: later
    fetch: { upstream: shop, path: /later }
    reason: r
"#,
    );
    dir.write(
        "check.rhai",
        "let left = 1;\nfetched[\"Stock\"].body.left > left\n",
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 11, 23, r#"rule "typo": require: invalid expression: fetched["stok"]: no fetch rule "stok" before this rule; did you mean "stock"?"#),
            dir.at(DEFAULT, 14, 22, r#"rule "local": require: invalid expression: fetched["limit"]: rule "limit" is not a fetch rule; fetched holds the answers of the fetch rules before this one"#),
            dir.at(DEFAULT, 17, 20, r#"rule "ahead": when: invalid expression: fetched["later"]: the fetch rule "later" does not come before this rule, so its answer is never there when this rule runs"#),
            dir.at("check.rhai", 2, 9, r#"fetched["Stock"]: no fetch rule "Stock" before this rule; did you mean "stock"? (script of rule "scripted" in default.yaml)"#),
        ]
    );
}

/// A script shared by rules of two rule files: the error names the file whose rule lacks the
/// fetch rule, not only the rule's name (both rules are called "qty").
#[test]
fn an_error_in_a_shared_script_names_the_rule_file() {
    let fetching = r#"upstreams:
  shop: { url: "http://shop.test" }
rules:
  - name: stock
    fetch: { upstream: shop, path: /stock }
    reason: r
  - name: qty
    script: scripts/qty.rhai
    reason: r
"#;
    let dir = default_file(fetching);
    dir.write(
        "events.yaml",
        "rules:\n  - name: qty\n    script: scripts/qty.rhai\n    reason: r\n",
    )
    .write(
        "scripts/qty.rhai",
        "let left = 1;\nlet stock = fetched[\"stock\"];\nstock.body.left >= left\n",
    );
    assert_eq!(
        dir.errors(),
        [dir.at(
            "scripts/qty.rhai",
            2,
            21,
            r#"fetched["stock"]: no fetch rule "stock" before this rule (script of rule "qty" in events.yaml)"#
        )]
    );
}
