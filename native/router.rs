//! The route mirror: which route of the app a request reaches, decided in Rust exactly as
//! Starlette's router decides it.
//!
//! The Python compiler hands over the app's effective routes in declaration order, each with
//! Starlette's own compiled path regex (`route.path_regex.pattern`), its methods, and whether the
//! native tier serves it. Starlette's rule is "the first route that matches path *and* method
//! wins"; a route matching the path only (a partial match) does not stop the search. A request
//! goes native only when its winning route is native; a route the compiler did not understand
//! goes to the ASGI tier, which runs the real app and is right by construction.
//!
//! When no route matches path and method (a miss), the router answers by its own rules: the first
//! route matching the path answers 405, else a route matching the path with its trailing slash
//! toggled means a redirect (`redirect_slashes`), else 404. The mirror says which only when the
//! compiler vouched for the whole table ([`Misses`]: every route's matching is Starlette's, the
//! router's own `not_found`, no other way to match); otherwise a miss goes to the ASGI tier.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;

use crate::errors::EngineError;

/// Who serves a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// The native tier, with the id of the plan the compiler made for the route.
    Native(u32),
    /// The ASGI tier (the whole app is called).
    Asgi,
}

/// One route as the compiler describes it.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    /// Starlette's `path_regex.pattern` (Python `re` syntax; Starlette's convertors only use the
    /// subset that Rust's `regex` shares).
    pub pattern: String,
    /// Upper-case methods; `None` matches every method (a mount, or a route without methods).
    pub methods: Option<Vec<String>>,
    /// The exact path when the route has no parameters (enables the O(1) lookup).
    pub static_path: Option<String>,
    /// The literal text every matching path starts with (the path up to its first parameter).
    pub prefix: String,
    pub tier: Tier,
}

/// The outcome of a lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Serve natively with this plan; the path parameters as captured (not yet converted).
    Native {
        plan: u32,
        params: Vec<(String, String)>,
    },
    /// A miss whose first path match is this native route: its `handle` answers 405.
    MethodNotAllowed {
        plan: u32,
        params: Vec<(String, String)>,
    },
    /// A miss; the path with its trailing slash toggled matches a route: the router redirects.
    Redirect,
    /// A miss, with or without the trailing slash: the router's `not_found` answers.
    NoRoute,
    Asgi,
}

/// How the mirror may answer a miss (set by the compiler for the whole table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Misses {
    /// The table is known whole: a miss is the router's 405, redirect or 404.
    pub native: bool,
    /// The router's `redirect_slashes`.
    pub redirect_slashes: bool,
}

struct Route {
    /// `None` for a static route whose pattern is exactly its path: matched by comparison,
    /// so that 10,000 static routes do not hold 10,000 compiled regexes.
    regex: Option<Regex>,
    static_path: Option<String>,
    names: Vec<String>,
    prefix: String,
    methods: Option<Vec<String>>,
    is_static: bool,
    tier: Tier,
    /// The route's path template (`/items/{item_id}`), the metrics' route label.
    template: Option<Arc<str>>,
}

impl Route {
    /// Cheap pre-check: every path the route matches starts with its literal prefix.
    fn matches_prefix(&self, path: &str) -> bool {
        path.starts_with(self.prefix.as_str())
    }

    fn accepts(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.iter().any(|m| m == method))
    }

    /// Python's `re.match` with a pattern ending in `$`: `$` also matches just before a final
    /// newline, so `/a\n` matches `^/a$`.
    fn captures<'p>(&self, path: &'p str) -> Option<regex::Captures<'p>> {
        let regex = self.regex.as_ref()?;
        regex.captures(path).or_else(|| {
            path.strip_suffix('\n')
                .and_then(|trimmed| regex.captures(trimmed))
        })
    }

    /// Whether the route matches `path`, and its captures when it has a regex.
    fn hit<'p>(&self, path: &'p str) -> Option<Option<regex::Captures<'p>>> {
        match (&self.regex, &self.static_path) {
            (None, Some(literal)) => {
                let exact = path == literal || path.strip_suffix('\n') == Some(literal.as_str());
                exact.then_some(None)
            }
            _ => self.captures(path).map(Some),
        }
    }
}

/// Whether `pattern` matches exactly the text `literal` and nothing else (`^literal$`).
fn is_exact_literal(pattern: &str, literal: &str) -> bool {
    use regex_syntax::hir::{HirKind, Look};
    let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else {
        return false;
    };
    let HirKind::Concat(parts) = hir.kind() else {
        return false;
    };
    match parts.as_slice() {
        [start, middle, end] => {
            matches!(start.kind(), HirKind::Look(Look::Start))
                && matches!(end.kind(), HirKind::Look(Look::End))
                && matches!(middle.kind(), HirKind::Literal(lit) if lit.0.as_ref() == literal.as_bytes())
        }
        _ => false,
    }
}

/// Where a listener holds the app's route mirror, when its routes can be served natively
/// (swapped whole when the app's table changes; `None`: every request goes to the ASGI tier).
pub type MirrorSlot = arc_swap::ArcSwapOption<RouteMirror>;

/// The mirrored route table of one app.
pub struct RouteMirror {
    routes: Vec<Route>,
    /// Static path -> the static routes with exactly that path, in order, for the paths that no
    /// earlier dynamic route can match.
    statics: HashMap<String, Vec<usize>>,
    /// The app's middleware, when the engine runs them (`None`: the app has none).
    stack: Option<std::sync::Arc<crate::middleware::Stack>>,
    misses: Misses,
    /// The app's websocket routes (never matched by an HTTP request): their path regex and
    /// template, for the metrics' route label of a websocket handshake.
    websockets: Vec<(Regex, Arc<str>)>,
}

impl RouteMirror {
    /// Compiles the table. An error names the route whose pattern Rust cannot compile; the
    /// caller then serves the whole app through the ASGI tier.
    pub fn build(specs: Vec<RouteSpec>) -> Result<Self, EngineError> {
        let mut routes: Vec<Route> = Vec::with_capacity(specs.len());
        let mut statics: HashMap<String, Vec<usize>> = HashMap::new();
        let mut static_paths = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let regex = Regex::new(&spec.pattern).map_err(|error| EngineError::RoutePattern {
                index,
                pattern: spec.pattern.clone(),
                error,
            })?;
            let names = regex.capture_names().flatten().map(str::to_owned).collect();
            let is_static = spec.static_path.is_some();
            let literal = spec
                .static_path
                .as_ref()
                .filter(|path| regex.is_match(path) && is_exact_literal(&spec.pattern, path))
                .cloned();
            if let Some(path) = spec.static_path {
                let matches_itself = regex.is_match(&path);
                static_paths.push((index, path, matches_itself));
            }
            routes.push(Route {
                regex: if literal.is_some() { None } else { Some(regex) },
                static_path: literal,
                names,
                prefix: spec.prefix,
                methods: spec.methods,
                is_static,
                tier: spec.tier,
                template: None,
            });
        }
        // A static path is indexed with the static routes that have exactly that path, in
        // order, up to the first route of another kind that also matches it: a lookup that
        // finds no route accepting the method among them falls back to the ordered scan.
        for (index, path, matches_itself) in static_paths {
            if statics.get(&path).is_some_and(|v| v.contains(&usize::MAX)) {
                continue; // closed by a dynamic route
            }
            let start = statics
                .get(&path)
                .and_then(|v| v.last().copied())
                .map_or(0, |i| i + 1);
            let blocked = routes[start..index]
                .iter()
                .any(|r| !r.is_static && r.matches_prefix(&path) && r.captures(&path).is_some());
            let entry = statics.entry(path.clone()).or_default();
            if blocked || !matches_itself {
                entry.push(usize::MAX);
            } else {
                entry.push(index);
            }
        }
        for indices in statics.values_mut() {
            if let Some(end) = indices.iter().position(|&i| i == usize::MAX) {
                indices.truncate(end);
            }
        }
        statics.retain(|_, indices| !indices.is_empty());
        Ok(Self {
            routes,
            statics,
            stack: None,
            misses: Misses::default(),
            websockets: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// The middleware the engine runs around this app's native routes.
    pub fn stack(&self) -> Option<&std::sync::Arc<crate::middleware::Stack>> {
        self.stack.as_ref()
    }

    /// The route a request reaches (`route_path` is the percent-decoded path, root path removed).
    pub fn lookup(&self, method: &str, route_path: &str) -> Found {
        self.lookup_templated(method, route_path).0
    }

    /// [`lookup`](Self::lookup), with the path template of the route that decided (the route
    /// that answers 405 for a method it does not take; `None` for a redirect or a 404).
    pub fn lookup_templated(&self, method: &str, route_path: &str) -> (Found, Option<Arc<str>>) {
        let decided =
            |route: &Route, captures| (Self::found(route, captures), route.template.clone());
        if let Some(indices) = self.statics.get(route_path) {
            if let Some(&index) = indices.iter().find(|&&i| self.routes[i].accepts(method)) {
                return decided(&self.routes[index], None);
            }
        }
        for route in &self.routes {
            if !route.accepts(method) || !route.matches_prefix(route_path) {
                continue; // at best a partial match, which never wins
            }
            if let Some(captures) = route.hit(route_path) {
                return decided(route, captures.as_ref());
            }
        }
        let template = || {
            self.first_path_match(route_path)
                .and_then(|(r, _)| r.template.clone())
        };
        if self.misses.native {
            let found = self.miss(route_path);
            let template = match found {
                Found::MethodNotAllowed { .. } | Found::Asgi => template(),
                _ => None,
            };
            (found, template)
        } else {
            (Found::Asgi, template())
        }
    }

    /// Gives the routes their path templates (in the order of the specs) and the app's
    /// websocket routes as `(Starlette's path regex, template)`; a websocket regex Rust cannot
    /// compile is left out (its handshakes are labelled unmatched).
    pub fn set_templates(&mut self, templates: Vec<String>, websockets: Vec<(String, String)>) {
        for (route, template) in self.routes.iter_mut().zip(templates) {
            route.template = Some(Arc::from(template));
        }
        self.websockets = websockets
            .into_iter()
            .filter_map(|(pattern, template)| {
                Some((Regex::new(&pattern).ok()?, Arc::from(template)))
            })
            .collect();
    }

    /// The template of the first websocket route matching `path` (the raw request path).
    pub fn websocket_template(&self, path: &str) -> Option<Arc<str>> {
        let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        self.websockets
            .iter()
            .find(|(regex, _)| regex.is_match(&path))
            .map(|(_, template)| template.clone())
    }

    /// Answers how the router handles `method`s miss on `route_path` (no route takes the pair):
    /// Starlette's `Router.app` after its loop.
    fn miss(&self, route_path: &str) -> Found {
        if let Some((route, captures)) = self.first_path_match(route_path) {
            return match Self::found(route, captures.as_ref()) {
                Found::Native { plan, params } => Found::MethodNotAllowed { plan, params },
                _ => Found::Asgi, // its own handle answers
            };
        }
        if self.misses.redirect_slashes && route_path != "/" {
            let toggled = match route_path.strip_suffix('/') {
                Some(_) => std::borrow::Cow::Borrowed(route_path.trim_end_matches('/')),
                None => std::borrow::Cow::Owned(format!("{route_path}/")),
            };
            if self.first_path_match(&toggled).is_some() {
                return Found::Redirect;
            }
        }
        Found::NoRoute
    }

    /// The first route whose path matches, whatever its methods (Starlette's partial match).
    fn first_path_match<'p>(&self, path: &'p str) -> Option<(&Route, Option<regex::Captures<'p>>)> {
        self.routes
            .iter()
            .filter(|route| route.matches_prefix(path))
            .find_map(|route| route.hit(path).map(|captures| (route, captures)))
    }

    /// Lets the mirror answer misses (see [`Misses`]).
    pub fn set_misses(&mut self, misses: Misses) {
        self.misses = misses;
    }

    fn found(route: &Route, captures: Option<&regex::Captures<'_>>) -> Found {
        match route.tier {
            Tier::Asgi => Found::Asgi,
            Tier::Native(plan) => {
                let params = captures
                    .map(|caps| {
                        route
                            .names
                            .iter()
                            .filter_map(|name| {
                                caps.name(name)
                                    .map(|m| (name.clone(), m.as_str().to_owned()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Found::Native { plan, params }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starlette's `compile_path` for the convertors it ships (what `route.path_regex` holds).
    fn starlette_pattern(path: &str) -> (String, Option<String>) {
        let mut pattern = String::from("^");
        let mut is_static = true;
        let mut rest = path;
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').unwrap() + start;
            pattern.push_str(&regex::escape(&rest[..start]));
            let inner = &rest[start + 1..end];
            let (name, conv) = inner.split_once(':').unwrap_or((inner, "str"));
            let re = match conv {
                "str" => "[^/]+",
                "path" => ".*",
                "int" => "[0-9]+",
                "float" => r"[0-9]+(\.[0-9]+)?",
                "uuid" => {
                    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                }
                other => panic!("unknown convertor {other}"),
            };
            pattern.push_str(&format!("(?P<{name}>{re})"));
            is_static = false;
            rest = &rest[end + 1..];
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push('$');
        (pattern, is_static.then(|| path.to_owned()))
    }

    fn prefix_of(path: &str) -> String {
        path.split('{').next().unwrap_or_default().to_owned()
    }

    fn route(path: &str, methods: &[&str], tier: Tier) -> RouteSpec {
        let (pattern, static_path) = starlette_pattern(path);
        RouteSpec {
            prefix: prefix_of(path),
            pattern,
            methods: if methods.is_empty() {
                None
            } else {
                Some(methods.iter().map(|m| (*m).to_owned()).collect())
            },
            static_path,
            tier,
        }
    }

    fn native(plan: u32, params: &[(&str, &str)]) -> Found {
        Found::Native {
            plan,
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn first_full_match_wins_in_declaration_order() {
        let mirror = RouteMirror::build(vec![
            route("/users/me", &["GET"], Tier::Native(1)),
            route("/users/{user_id}", &["GET"], Tier::Native(2)),
            route("/users/{user_id}", &["GET"], Tier::Native(3)),
        ])
        .unwrap();
        assert_eq!(mirror.lookup("GET", "/users/me"), native(1, &[]));
        assert_eq!(
            mirror.lookup("GET", "/users/7"),
            native(2, &[("user_id", "7")])
        );
    }

    #[test]
    fn an_earlier_dynamic_route_shadows_a_later_static_one() {
        let mirror = RouteMirror::build(vec![
            route("/users/{user_id}", &["GET"], Tier::Native(1)),
            route("/users/me", &["GET"], Tier::Native(2)),
        ])
        .unwrap();
        assert_eq!(
            mirror.lookup("GET", "/users/me"),
            native(1, &[("user_id", "me")])
        );
        assert!(mirror.statics.is_empty());
    }

    #[test]
    fn a_dynamic_route_between_two_static_ones_keeps_its_turn() {
        let mirror = RouteMirror::build(vec![
            route("/a", &["GET"], Tier::Native(1)),
            route("/{x}", &["POST"], Tier::Native(2)),
            route("/a", &["POST"], Tier::Native(3)),
        ])
        .unwrap();
        assert_eq!(mirror.lookup("GET", "/a"), native(1, &[]));
        assert_eq!(mirror.lookup("POST", "/a"), native(2, &[("x", "a")]));
    }

    fn answering_misses(specs: Vec<RouteSpec>, redirect_slashes: bool) -> RouteMirror {
        let mut mirror = RouteMirror::build(specs).unwrap();
        mirror.set_misses(Misses {
            native: true,
            redirect_slashes,
        });
        mirror
    }

    #[test]
    fn misses_go_to_the_asgi_tier_unless_the_table_is_vouched_for() {
        let mirror =
            RouteMirror::build(vec![route("/items/{id}", &["GET"], Tier::Native(1))]).unwrap();
        assert_eq!(mirror.lookup("POST", "/items/3"), Found::Asgi);
        assert_eq!(mirror.lookup("GET", "/nope"), Found::Asgi);
    }

    #[test]
    fn the_first_path_match_answers_405() {
        let mirror = answering_misses(
            vec![
                route("/items/{id}", &["GET"], Tier::Native(1)),
                route("/items/{name}", &["PUT"], Tier::Native(2)),
                route("/custom/{id}", &["GET"], Tier::Asgi),
            ],
            true,
        );
        assert_eq!(
            mirror.lookup("DELETE", "/items/3"),
            Found::MethodNotAllowed {
                plan: 1,
                params: vec![("id".to_owned(), "3".to_owned())]
            }
        );
        assert_eq!(
            mirror.lookup("PUT", "/items/3"),
            native(2, &[("name", "3")])
        );
        // a route the compiler left to the ASGI tier answers its own 405
        assert_eq!(mirror.lookup("POST", "/custom/3"), Found::Asgi);
    }

    #[test]
    fn a_toggled_trailing_slash_that_matches_redirects() {
        let specs = || {
            vec![
                route("/items/", &["GET"], Tier::Native(1)),
                route("/users", &["POST"], Tier::Native(2)),
            ]
        };
        let mirror = answering_misses(specs(), true);
        assert_eq!(mirror.lookup("GET", "/items"), Found::Redirect);
        // any method: the redirect only needs the path to match
        assert_eq!(mirror.lookup("GET", "/users/"), Found::Redirect);
        assert_eq!(mirror.lookup("GET", "/users///"), Found::Redirect); // Python's rstrip("/")
        assert_eq!(mirror.lookup("GET", "/nope"), Found::NoRoute);
        assert_eq!(mirror.lookup("GET", "/"), Found::NoRoute); // "/" is never toggled
        let strict = answering_misses(specs(), false);
        assert_eq!(strict.lookup("GET", "/items"), Found::NoRoute);
    }

    #[test]
    fn misses_encode_as_plan_ids() {
        assert_eq!(encode(Found::NoRoute), Some((NOT_FOUND, vec![])));
        assert_eq!(encode(Found::Redirect), Some((REDIRECT, vec![])));
        assert_eq!(
            encode(Found::MethodNotAllowed {
                plan: 7,
                params: vec![]
            }),
            Some((7 | METHOD_NOT_ALLOWED, vec![]))
        );
        assert_eq!(encode(Found::Asgi), None);
    }

    #[test]
    fn a_partial_match_does_not_stop_the_search() {
        let mirror = RouteMirror::build(vec![
            route("/items/{id}", &["POST"], Tier::Native(1)),
            route("/items/{id}", &["GET"], Tier::Native(2)),
            route("/other", &["PUT"], Tier::Native(3)),
        ])
        .unwrap();
        assert_eq!(mirror.lookup("GET", "/items/3"), native(2, &[("id", "3")]));
        // Method not allowed anywhere: the ASGI tier answers 405 with `Allow`.
        assert_eq!(mirror.lookup("DELETE", "/items/3"), Found::Asgi);
        assert_eq!(mirror.lookup("GET", "/other"), Found::Asgi);
    }

    #[test]
    fn convertors_match_as_starlette_compiles_them() {
        let mirror = RouteMirror::build(vec![
            route("/int/{n:int}", &["GET"], Tier::Native(1)),
            route("/float/{x:float}", &["GET"], Tier::Native(2)),
            route("/uuid/{u:uuid}", &["GET"], Tier::Native(3)),
            route("/files/{p:path}", &["GET"], Tier::Native(4)),
            route("/str/{s}", &["GET"], Tier::Native(5)),
        ])
        .unwrap();
        assert_eq!(mirror.lookup("GET", "/int/42"), native(1, &[("n", "42")]));
        assert_eq!(mirror.lookup("GET", "/int/-1"), Found::Asgi);
        assert_eq!(mirror.lookup("GET", "/int/4x"), Found::Asgi);
        assert_eq!(
            mirror.lookup("GET", "/float/1.5"),
            native(2, &[("x", "1.5")])
        );
        assert_eq!(mirror.lookup("GET", "/float/1."), Found::Asgi);
        let id = "123e4567-e89b-12d3-a456-426614174000";
        assert_eq!(
            mirror.lookup("GET", &format!("/uuid/{id}")),
            native(3, &[("u", id)])
        );
        assert_eq!(mirror.lookup("GET", "/uuid/not-a-uuid"), Found::Asgi);
        assert_eq!(
            mirror.lookup("GET", "/files/a/b/c.txt"),
            native(4, &[("p", "a/b/c.txt")])
        );
        assert_eq!(mirror.lookup("GET", "/files/"), native(4, &[("p", "")]));
        assert_eq!(mirror.lookup("GET", "/str/a b"), native(5, &[("s", "a b")]));
        assert_eq!(mirror.lookup("GET", "/str/a/b"), Found::Asgi);
        assert_eq!(mirror.lookup("GET", "/str/é"), native(5, &[("s", "é")]));
    }

    #[test]
    fn trailing_slashes_are_left_to_the_asgi_tier() {
        let mirror = RouteMirror::build(vec![
            route("/items", &["GET"], Tier::Native(1)),
            route("/dir/", &["GET"], Tier::Native(2)),
        ])
        .unwrap();
        assert_eq!(mirror.lookup("GET", "/items"), native(1, &[]));
        // `redirect_slashes` (a 307 to the other spelling) is answered by the real app.
        assert_eq!(mirror.lookup("GET", "/items/"), Found::Asgi);
        assert_eq!(mirror.lookup("GET", "/dir"), Found::Asgi);
        assert_eq!(mirror.lookup("GET", "/dir/"), native(2, &[]));
    }

    #[test]
    fn python_dollar_matches_before_a_final_newline() {
        let mirror = RouteMirror::build(vec![
            route("/a", &["GET"], Tier::Native(1)),
            route("/n/{n:int}", &["GET"], Tier::Native(2)),
        ])
        .unwrap();
        assert_eq!(mirror.lookup("GET", "/a\n"), native(1, &[]));
        assert_eq!(mirror.lookup("GET", "/n/5\n"), native(2, &[("n", "5")]));
    }

    #[test]
    fn asgi_routes_and_mounts_keep_their_place() {
        let mirror = RouteMirror::build(vec![
            RouteSpec {
                pattern: "^/static/(?P<path>.*)$".into(),
                prefix: "/static/".into(),
                methods: None,
                static_path: None,
                tier: Tier::Asgi,
            },
            route("/static/app.js", &["GET"], Tier::Native(1)),
            route("/api/{x}", &["GET"], Tier::Asgi),
            route("/api/ok", &["GET"], Tier::Native(2)),
        ])
        .unwrap();
        assert_eq!(mirror.lookup("GET", "/static/app.js"), Found::Asgi);
        assert_eq!(mirror.lookup("GET", "/api/ok"), Found::Asgi);
    }

    #[test]
    fn head_only_when_the_route_lists_it() {
        let mirror = RouteMirror::build(vec![
            route("/fastapi", &["GET"], Tier::Native(1)),
            route("/starlette", &["GET", "HEAD"], Tier::Native(2)),
        ])
        .unwrap();
        assert_eq!(mirror.lookup("HEAD", "/fastapi"), Found::Asgi);
        assert_eq!(mirror.lookup("HEAD", "/starlette"), native(2, &[]));
    }

    #[test]
    fn ten_thousand_routes() {
        let mut specs: Vec<RouteSpec> = (0..5_000)
            .map(|i| route(&format!("/static/{i}"), &["GET"], Tier::Native(i)))
            .collect();
        specs.extend((0..5_000).map(|i| {
            route(
                &format!("/dyn{i}/{{x:int}}"),
                &["GET"],
                Tier::Native(10_000 + i),
            )
        }));
        let mirror = RouteMirror::build(specs).unwrap();
        assert_eq!(mirror.len(), 10_000);
        assert_eq!(mirror.statics.len(), 5_000);
        assert_eq!(mirror.lookup("GET", "/static/4999"), native(4999, &[]));
        assert_eq!(
            mirror.lookup("GET", "/dyn4999/7"),
            native(14_999, &[("x", "7")])
        );
        assert_eq!(mirror.lookup("GET", "/nowhere"), Found::Asgi);
    }

    #[test]
    fn a_pattern_rust_cannot_compile_is_reported() {
        let spec = RouteSpec {
            pattern: "^/(?P<x>a(?=b))$".into(),
            prefix: "/".into(),
            methods: None,
            static_path: None,
            tier: Tier::Native(1),
        };
        let error = RouteMirror::build(vec![spec])
            .err()
            .expect("lookaround is not supported")
            .to_string();
        assert!(error.contains("route 0"), "{error}");
    }

    #[test]
    fn static_routes_are_compared_only_when_their_pattern_is_their_path() {
        assert!(super::is_exact_literal("^/items/all$", "/items/all"));
        assert!(super::is_exact_literal(r"^/a\.b$", "/a.b"));
        assert!(super::is_exact_literal("^/$", "/"));
        assert!(!super::is_exact_literal("^/a.b$", "/a.b")); // `.` is any character
        assert!(!super::is_exact_literal("^/items/all", "/items/all"));
        assert!(!super::is_exact_literal("^/(?i)items$", "/items"));
        // A static route whose regex is not its path keeps the regex: same answers either way.
        let spec = RouteSpec {
            pattern: "^/a.b$".to_owned(),
            prefix: "/a".to_owned(),
            methods: Some(vec!["GET".to_owned()]),
            static_path: Some("/a.b".to_owned()),
            tier: Tier::Native(7),
        };
        let mirror = RouteMirror::build(vec![spec]).expect("builds");
        assert_eq!(mirror.lookup("GET", "/axb"), native(7, &[]));
        assert_eq!(mirror.lookup("GET", "/a.b\n"), native(7, &[]));
    }
}

/// The route mirror as a Python object, so the compiler (and its tests) can ask it which route
/// a request reaches: `RouteMirror([(pattern, prefix, methods|None, static_path|None, plan|None)],
/// middleware=MiddlewareStack|None)`.
#[pyo3::pyclass(frozen, module = "fastrapi_compat._native", name = "RouteMirror")]
pub struct PyRouteMirror {
    pub(crate) inner: std::sync::Arc<RouteMirror>,
}

type SpecTuple = (
    String,
    String,
    Option<Vec<String>>,
    Option<String>,
    Option<u32>,
);

#[pyo3::pymethods]
impl PyRouteMirror {
    #[new]
    #[pyo3(signature = (routes, middleware=None, misses=false, redirect_slashes=false, templates=Vec::new(), websockets=Vec::new()))]
    fn new(
        routes: Vec<SpecTuple>,
        middleware: Option<pyo3::PyRef<'_, crate::middleware::PyMiddlewareStack>>,
        misses: bool,
        redirect_slashes: bool,
        templates: Vec<String>,
        websockets: Vec<(String, String)>,
    ) -> pyo3::PyResult<Self> {
        let stack = middleware.map(|m| m.inner.clone());
        let specs = routes
            .into_iter()
            .map(|(pattern, prefix, methods, static_path, plan)| RouteSpec {
                pattern,
                prefix,
                methods,
                static_path,
                tier: plan.map_or(Tier::Asgi, Tier::Native),
            })
            .collect();
        RouteMirror::build(specs)
            .map(|mut inner| {
                inner.stack = stack;
                inner.set_misses(Misses {
                    native: misses,
                    redirect_slashes,
                });
                inner.set_templates(templates, websockets);
                Self {
                    inner: std::sync::Arc::new(inner),
                }
            })
            .map_err(Into::into)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// `(plan, {name: raw value})` when the request reaches a native route, else `None`; a
    /// miss the mirror answers has the plan id [`encode`] gives it.
    fn lookup(&self, method: &str, route_path: &str) -> Option<(u32, HashMap<String, String>)> {
        encode(self.inner.lookup(method, route_path))
            .map(|(plan, params)| (plan, params.into_iter().collect()))
    }
}

/// Plan ids of the misses the mirror answers, as Python sees them: a route's 405 is its plan id
/// with this bit set; a redirect and a 404 have ids of their own.
pub const METHOD_NOT_ALLOWED: u32 = 1 << 31;
pub const REDIRECT: u32 = u32::MAX - 1;
pub const NOT_FOUND: u32 = u32::MAX;

/// A lookup's outcome as `(plan id, raw path parameters)`, `None` for the ASGI tier.
pub fn encode(found: Found) -> Option<(u32, Vec<(String, String)>)> {
    match found {
        Found::Native { plan, params } => Some((plan, params)),
        Found::MethodNotAllowed { plan, params } => Some((plan | METHOD_NOT_ALLOWED, params)),
        Found::Redirect => Some((REDIRECT, Vec::new())),
        Found::NoRoute => Some((NOT_FOUND, Vec::new())),
        Found::Asgi => None,
    }
}

pub fn init_pymodule(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    use pyo3::types::PyModuleMethods;
    m.add("MISS_METHOD_NOT_ALLOWED", METHOD_NOT_ALLOWED)?;
    m.add("MISS_REDIRECT", REDIRECT)?;
    m.add("MISS_NOT_FOUND", NOT_FOUND)?;
    m.add_class::<PyRouteMirror>()
}
