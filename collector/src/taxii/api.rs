//! The collector's read-only TAXII 2.1 API root, `/taxii2/zdn/`, with two collections:
//!
//! - **indicators**: the published set, one STIX `indicator` per indicator — the source's own
//!   STIX id where it came from STIX, else our UUIDv5 (the id `zdn export --format stix`
//!   gives it); TLP as the standard marking definitions, confidence, tags as labels, validity.
//!   `date_added` is when the indicator entered the published set, as far as the remembered
//!   delta steps tell ([`AddedTimes`](crate::service::indicator::AddedTimes)), so a client
//!   polling with `added_after` gets what was added since, not the whole set again.
//! - **sightings**: the caller's view of the stored sightings (a participant analyst sees its
//!   own institution's only), as `zdn export --format stix` writes them: `sighting` objects
//!   (`date_added` when the collector received it), the `identity` objects they name, and
//!   our `indicator` objects for indicators that did not come from STIX.
//!
//! Every request is admitted like an analyst call (role analyst or admin, audited as `taxii`).
//! Answers page by `limit` (at most [`MAX_PAGE`]) and an opaque `next`, in `date_added` order,
//! with `X-TAXII-Date-Added-First/Last`; `match[type]`, `match[id]` and `match[spec_version]`
//! filter; one version per object is held, so `match[version]` is accepted and changes
//! nothing. Writes are refused (`can_write` false). Errors are TAXII error messages.
//!
//! Served on the gRPC port (identity from the client certificate, like the HTTP API) and on
//! the console port, where a client without a certificate sends a console token as a bearer
//! token or as the password of HTTP basic authentication (see `crate::console::client_credentials`).

use crate::access::View;
use crate::export;
use crate::service::analyst::Analyst;
use crate::service::indicator::Published;
use crate::service::taxii::TaxiiRead;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BinaryHeap;
use std::sync::Arc;
use zdn_indicators::set::Match;
use zdn_timestamps::{format_unix_ms, now_ms, parse_time_or_age};
use zdn_transport::server::Peer;

use super::source::TAXII_MEDIA_TYPE;

/// The API root's path.
pub const API_ROOT: &str = "/taxii2/zdn/";

/// Objects per page at most (and when the client names no limit).
pub const MAX_PAGE: usize = 10_000;
const DEFAULT_PAGE: usize = 1000;

/// The standard TLP marking definitions of STIX 2.1 (section 7.2.1.4).
const TLP_MARKINGS: [(&str, &str); 4] = [
    ("white", "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"),
    ("green", "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"),
    ("amber", "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"),
    ("red", "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    Indicators,
    Sightings,
}

impl Collection {
    const ALL: [Collection; 2] = [Collection::Indicators, Collection::Sightings];

    fn id(self) -> String {
        export::id("x-zdn-collection", self.title()).trim_start_matches("x-zdn-collection--").to_owned()
    }

    fn title(self) -> &'static str {
        match self {
            Collection::Indicators => "indicators",
            Collection::Sightings => "sightings",
        }
    }

    fn find(id: &str) -> Result<Collection, TaxiiError> {
        Collection::ALL
            .into_iter()
            .find(|c| c.id() == id || c.title() == id)
            .ok_or_else(|| TaxiiError::new(StatusCode::NOT_FOUND, "no such collection", id))
    }

    fn resource(self) -> Value {
        let description = match self {
            Collection::Indicators => "The indicators the CERT publishes to the ZDN agents",
            Collection::Sightings => "Sightings of those indicators at the institutions (your view)",
        };
        json!({
            "id": self.id(), "title": self.title(), "description": description,
            "can_read": true, "can_write": false,
            "media_types": ["application/stix+json;version=2.1"],
        })
    }
}

/// A TAXII error message with its HTTP status.
#[derive(Debug)]
pub struct TaxiiError {
    status: StatusCode,
    title: String,
    description: String,
}

impl TaxiiError {
    pub fn new(status: StatusCode, title: &str, description: impl Into<String>) -> TaxiiError {
        TaxiiError { status, title: title.to_owned(), description: description.into() }
    }
}

impl From<tonic::Status> for TaxiiError {
    fn from(status: tonic::Status) -> Self {
        let http = crate::http::http_status(status.code());
        TaxiiError::new(http, http.canonical_reason().unwrap_or("error"), status.message())
    }
}

impl IntoResponse for TaxiiError {
    fn into_response(self) -> Response {
        let body = json!({
            "title": self.title, "description": self.description, "http_status": self.status.as_u16().to_string(),
        });
        let mut response = taxii(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ZDN TAXII\""));
        }
        response
    }
}

fn taxii(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, TAXII_MEDIA_TYPE)], body.to_string()).into_response()
}

type Answer = Result<Response, TaxiiError>;

pub fn router(analyst: Arc<Analyst>) -> Router {
    let root = API_ROOT.trim_end_matches('/');
    Router::new()
        .route("/taxii2/", get(discovery))
        .route(API_ROOT, get(api_root))
        .route(&format!("{root}/collections/"), get(collections))
        .route(&format!("{root}/collections/{{id}}/"), get(collection))
        .route(&format!("{root}/collections/{{id}}/objects/"), get(objects))
        .route(&format!("{root}/collections/{{id}}/objects/{{object}}/"), get(object))
        .route(&format!("{root}/collections/{{id}}/objects/{{object}}/versions/"), get(versions))
        .route(&format!("{root}/collections/{{id}}/manifest/"), get(manifest))
        .layer(middleware::from_fn(require_taxii_accept))
        .with_state(analyst)
}

/// A client that accepts neither TAXII 2.1 nor anything is told so (406), as the spec asks.
async fn require_taxii_accept(request: Request, next: Next) -> Response {
    let acceptable = request.headers().get_all(header::ACCEPT).iter().all(|value| {
        value.to_str().unwrap_or("").split(',').any(|media| {
            let media = media.trim().to_ascii_lowercase().replace(' ', "");
            media.starts_with("application/taxii+json")
                && (!media.contains("version=") || media.contains("version=2.1"))
                || media.starts_with("*/*")
                || media.starts_with("application/*")
        })
    });
    if !acceptable {
        let expected = format!("this server answers {TAXII_MEDIA_TYPE}");
        return TaxiiError::new(StatusCode::NOT_ACCEPTABLE, "not acceptable", expected).into_response();
    }
    next.run(request).await
}

/// The read as the analyst service admits it: path and query, with the caller's identity.
fn read_of(request: &Request) -> tonic::Request<TaxiiRead> {
    let read = TaxiiRead {
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or("").to_owned(),
    };
    crate::http::grpc(request, read)
}

/// Admits the read (role, audit) and gives the caller's view.
async fn admit(analyst: &Analyst, read: tonic::Request<TaxiiRead>) -> Result<View, TaxiiError> {
    Ok(analyst.taxii_view(&read).await?)
}

async fn discovery(State(analyst): State<Arc<Analyst>>, request: Request) -> Answer {
    let insecure = request.extensions().get::<Peer>().is_some_and(|p| p.insecure);
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let root = format!("{}://{host}{API_ROOT}", if insecure { "http" } else { "https" });
    admit(&analyst, read_of(&request)).await?;
    let body = json!({
        "title": "ZDN collector", "description": "Indicators and sightings of the Zorg Detectie Netwerk",
        "default": root, "api_roots": [root],
    });
    Ok(taxii(StatusCode::OK, &body))
}

async fn api_root(State(analyst): State<Arc<Analyst>>, request: Request) -> Answer {
    admit(&analyst, read_of(&request)).await?;
    let body = json!({
        "title": "ZDN", "description": "Read-only: the published indicators and the sightings you may see",
        "versions": [TAXII_MEDIA_TYPE], "max_content_length": 0,
    });
    Ok(taxii(StatusCode::OK, &body))
}

async fn collections(State(analyst): State<Arc<Analyst>>, request: Request) -> Answer {
    admit(&analyst, read_of(&request)).await?;
    let all: Vec<Value> = Collection::ALL.iter().map(|c| c.resource()).collect();
    Ok(taxii(StatusCode::OK, &json!({ "collections": all })))
}

async fn collection(State(analyst): State<Arc<Analyst>>, Path(id): Path<String>, request: Request) -> Answer {
    admit(&analyst, read_of(&request)).await?;
    Ok(taxii(StatusCode::OK, &Collection::find(&id)?.resource()))
}

/// The query of objects and manifest requests.
#[derive(Debug, Default, Deserialize)]
struct ObjectsQuery {
    added_after: Option<String>,
    limit: Option<String>,
    next: Option<String>,
    #[serde(rename = "match[type]")]
    types: Option<String>,
    #[serde(rename = "match[id]")]
    ids: Option<String>,
    #[serde(rename = "match[version]")]
    _version: Option<String>,
    #[serde(rename = "match[spec_version]")]
    spec_version: Option<String>,
}

/// What a page request asks for, checked.
struct Filter {
    added_after: Option<i64>,
    limit: usize,
    next: Option<(i64, String)>,
    types: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    no_spec_version_held: bool,
}

impl Filter {
    fn from_query(q: ObjectsQuery) -> Result<Filter, TaxiiError> {
        let bad = |what: String| TaxiiError::new(StatusCode::BAD_REQUEST, "bad request", what);
        let added_after = match q.added_after.as_deref() {
            None | Some("") => None,
            Some(t) => Some(parse_time_or_age(t, now_ms()).map_err(|e| bad(format!("added_after: {e}")))?),
        };
        let limit = match q.limit.as_deref() {
            None | Some("") => DEFAULT_PAGE,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if n > 0 => n.min(MAX_PAGE),
                _ => return Err(bad(format!("limit {l:?}: expected a positive number"))),
            },
        };
        let next = match q.next.as_deref() {
            None | Some("") => None,
            Some(token) => Some(
                token
                    .split_once('.')
                    .and_then(|(added, key)| Some((added.parse().ok()?, key.to_owned())))
                    .ok_or_else(|| bad(format!("next {token:?}: not a token this server gave")))?,
            ),
        };
        let list =
            |v: Option<String>| v.map(|v| v.split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>());
        let no_spec_version_held = q.spec_version.is_some_and(|v| !v.split(',').any(|s| s.trim() == "2.1"));
        Ok(Filter { added_after, limit, next, types: list(q.types), ids: list(q.ids), no_spec_version_held })
    }

    fn wants_type(&self, kind: &str) -> bool {
        !self.no_spec_version_held && self.types.as_ref().is_none_or(|t| t.iter().any(|t| t == kind))
    }

    fn wants_id(&self, id: &str) -> bool {
        self.ids.as_ref().is_none_or(|ids| ids.iter().any(|i| i == id))
    }

    fn after_cursor(&self, added: i64, key: &str) -> bool {
        self.added_after.is_none_or(|a| added > a)
            && self.next.as_ref().is_none_or(|(a, k)| (added, key) > (*a, k.as_str()))
    }
}

/// One page of objects, each with when it was added, in that order.
struct Page {
    objects: Vec<(i64, Value)>,
    next: Option<String>,
}

impl Page {
    /// The TAXII headers saying when the first and last object on the page were added.
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, ms: Option<&(i64, Value)>| {
            if let Some(value) = ms.and_then(|(ms, _)| HeaderValue::from_str(&format_unix_ms(*ms)).ok()) {
                headers.insert(name, value);
            }
        };
        put("X-TAXII-Date-Added-First", self.objects.first());
        put("X-TAXII-Date-Added-Last", self.objects.last());
        headers
    }

    /// The envelope of this page, each object as `record` writes it, with the TAXII headers.
    fn answer(&self, record: fn(i64, &Value) -> Value) -> Response {
        let objects: Vec<Value> = self.objects.iter().map(|(added, o)| record(*added, o)).collect();
        let mut body = json!({ "more": self.next.is_some(), "objects": objects });
        if let Some(next) = &self.next {
            body["next"] = next.clone().into();
        }
        (self.headers(), taxii(StatusCode::OK, &body)).into_response()
    }
}

async fn page_of(
    analyst: &Analyst,
    read: tonic::Request<TaxiiRead>,
    id: &str,
    filter: &Filter,
) -> Result<Page, TaxiiError> {
    let view = admit(analyst, read).await?;
    match Collection::find(id)? {
        Collection::Indicators => indicator_page(&analyst.shared.publishing.current(), filter),
        Collection::Sightings => {
            let sightings = analyst.taxii_sightings(&view).await?;
            let producer = &analyst.shared.config.cert_participant;
            let bundle = export::stix(&sightings, producer, now_ms());
            Ok(object_page(bundle["objects"].as_array().cloned().unwrap_or_default(), filter))
        }
    }
}

async fn objects(
    State(analyst): State<Arc<Analyst>>,
    Path(id): Path<String>,
    Query(q): Query<ObjectsQuery>,
    request: Request,
) -> Answer {
    let page = page_of(&analyst, read_of(&request), &id, &Filter::from_query(q)?).await?;
    Ok(page.answer(|_, object| object.clone()))
}

async fn manifest(
    State(analyst): State<Arc<Analyst>>,
    Path(id): Path<String>,
    Query(q): Query<ObjectsQuery>,
    request: Request,
) -> Answer {
    let page = page_of(&analyst, read_of(&request), &id, &Filter::from_query(q)?).await?;
    Ok(page.answer(manifest_record))
}

fn manifest_record(added: i64, object: &Value) -> Value {
    json!({
        "id": object["id"], "date_added": format_unix_ms(added),
        "version": object.get("modified").unwrap_or(&object["created"]),
        "media_type": "application/stix+json;version=2.1",
    })
}

/// One object by id (we hold one version of each).
async fn object(
    State(analyst): State<Arc<Analyst>>,
    Path((id, object)): Path<(String, String)>,
    request: Request,
) -> Answer {
    let page = one_object(&analyst, read_of(&request), &id, &object).await?;
    Ok(page.answer(|_, object| object.clone()))
}

async fn versions(
    State(analyst): State<Arc<Analyst>>,
    Path((id, object)): Path<(String, String)>,
    request: Request,
) -> Answer {
    let page = one_object(&analyst, read_of(&request), &id, &object).await?;
    let versions: Vec<Value> =
        page.objects.iter().map(|(a, o)| manifest_record(*a, o)["version"].clone()).collect();
    Ok((page.headers(), taxii(StatusCode::OK, &json!({ "more": false, "versions": versions })))
        .into_response())
}

async fn one_object(
    analyst: &Analyst,
    read: tonic::Request<TaxiiRead>,
    id: &str,
    object: &str,
) -> Result<Page, TaxiiError> {
    let filter = Filter {
        added_after: None,
        limit: MAX_PAGE,
        next: None,
        types: None,
        ids: Some(vec![object.to_owned()]),
        no_spec_version_held: false,
    };
    let page = page_of(analyst, read, id, &filter).await?;
    if page.objects.is_empty() {
        return Err(TaxiiError::new(StatusCode::NOT_FOUND, "no such object", object));
    }
    Ok(page)
}

/// A page of the published indicators: one pass over the set keeping the `limit` first in
/// (date added, position in the set) order, so a page costs one pass and no copy of the set.
/// The position is only stable within a version, so a `next` token names its version.
fn indicator_page(published: &Published, filter: &Filter) -> Result<Page, TaxiiError> {
    if !filter.wants_type("indicator") {
        return Ok(Page { objects: Vec::new(), next: None });
    }
    let version = published.version.to_string();
    let cursor = match &filter.next {
        Some((added, key)) => {
            let (token_version, position) = key.split_once('-').unwrap_or(("", ""));
            let position: usize = position.parse().unwrap_or(usize::MAX);
            if token_version != version {
                let why = "the collection changed since that page: ask again with added_after";
                return Err(TaxiiError::new(StatusCode::BAD_REQUEST, "stale next", why));
            }
            Some((*added, position))
        }
        None => None,
    };
    let (set, times) = (published.set(), published.added_times());
    let mut first = BinaryHeap::new();
    for (position, found) in set.iter().enumerate() {
        let added = times.of(&found);
        if filter.added_after.is_some_and(|a| added <= a) || cursor.is_some_and(|c| (added, position) <= c) {
            continue;
        }
        if filter.ids.is_some() && !filter.wants_id(&indicator_id(&found)) {
            continue;
        }
        first.push((added, position));
        if first.len() > filter.limit + 1 {
            first.pop();
        }
    }
    let mut chosen = first.into_sorted_vec();
    let more = chosen.len() > filter.limit;
    chosen.truncate(filter.limit);
    let next = more.then(|| chosen.last().map(|(a, p)| format!("{a}.{version}-{p}"))).flatten();
    let mut by_position: Vec<(usize, i64)> = chosen.iter().map(|&(a, p)| (p, a)).collect();
    by_position.sort_unstable();
    let mut wanted = by_position.into_iter().peekable();
    let mut objects = Vec::with_capacity(chosen.len());
    for (position, found) in set.iter().enumerate() {
        let Some(&(p, added)) = wanted.peek() else { break };
        if p == position {
            objects.push((added, indicator_object(&found, added)));
            wanted.next();
        }
    }
    objects.sort_by_key(|(added, _)| *added);
    Ok(Page { objects, next })
}

/// The STIX id of a published indicator: its source's, or ours.
fn indicator_id(found: &Match<'_>) -> String {
    let id = found.id();
    match export::stix_indicator_id(&id) {
        Some(stix) => stix.to_owned(),
        None => export::id("indicator", &format!("{}:{}", found.kind().as_str(), found.value())),
    }
}

fn indicator_object(found: &Match<'_>, added: i64) -> Value {
    let (kind, value, meta) = (found.kind(), found.value(), found.meta());
    let (pattern, pattern_type) = match export::pattern(kind, &value) {
        Some(p) => (p, "stix"),
        None => (value.to_string(), kind.as_str()),
    };
    let added_text = format_unix_ms(added);
    let mut object = json!({
        "type": "indicator", "spec_version": "2.1", "id": indicator_id(found),
        "created": added_text, "modified": added_text,
        "name": value, "indicator_types": ["malicious-activity"],
        "pattern": pattern, "pattern_type": pattern_type,
        "valid_from": meta.valid_from_unix_ms.map_or(added_text.clone(), format_unix_ms),
    });
    if let Some(until) = meta.valid_until_unix_ms {
        object["valid_until"] = format_unix_ms(until).into();
    }
    if meta.confidence > 0 {
        object["confidence"] = meta.confidence.into();
    }
    if !meta.tags.is_empty() {
        object["labels"] = meta.tags.clone().into();
    }
    if !meta.event.is_empty() {
        object["description"] = format!("{} (source {})", meta.event, meta.source).into();
    }
    let tlp = meta.tlp.to_ascii_lowercase();
    let tlp = tlp.trim_start_matches("tlp:");
    if let Some((_, marking)) =
        TLP_MARKINGS.iter().find(|(name, _)| *name == tlp || (tlp == "clear" && *name == "white"))
    {
        object["object_marking_refs"] = json!([marking]);
    }
    object
}

/// A page of a small collection held whole: ordered by (date added, id).
fn object_page(objects: Vec<Value>, filter: &Filter) -> Page {
    let mut dated: Vec<(i64, String, Value)> = objects
        .into_iter()
        .filter_map(|o| {
            let id = o["id"].as_str()?.to_owned();
            let kind = o["type"].as_str()?;
            if !filter.wants_type(kind) || !filter.wants_id(&id) {
                return None;
            }
            let added = parse_time_or_age(o["created"].as_str()?, 0).ok()?;
            filter.after_cursor(added, &id).then_some((added, id, o))
        })
        .collect();
    dated.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let more = dated.len() > filter.limit;
    dated.truncate(filter.limit);
    let next = more.then(|| dated.last().map(|(a, id, _)| format!("{a}.{id}"))).flatten();
    Page { objects: dated.into_iter().map(|(a, _, o)| (a, o)).collect(), next }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(query: &str) -> Filter {
        Filter::from_query(serde_urlencoded::from_str(query).unwrap()).unwrap()
    }

    fn objects(n: i64) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"type": if i % 2 == 0 { "sighting" } else { "identity" }, "id": format!("x--{i:03}"), "created": format_unix_ms(1_000_000 + i / 3 * 1000)}))
            .collect()
    }

    #[test]
    fn pages_of_a_held_collection_visit_every_object_once_in_order() {
        for limit in [1, 2, 3, 7, 50] {
            let mut seen = Vec::new();
            let mut next: Option<String> = None;
            for _ in 0..100 {
                let query = match &next {
                    Some(n) => format!("limit={limit}&next={n}"),
                    None => format!("limit={limit}"),
                };
                let page = object_page(objects(20), &filter(&query));
                seen.extend(page.objects.iter().map(|(_, o)| o["id"].as_str().unwrap().to_owned()));
                next = page.next;
                if next.is_none() {
                    break;
                }
            }
            let expected: Vec<String> = (0..20).map(|i| format!("x--{i:03}")).collect();
            assert_eq!(seen, expected, "limit {limit}");
        }
    }

    #[test]
    fn filters_by_added_after_type_and_id() {
        let after = format_unix_ms(1_002_000);
        let page = object_page(objects(20), &filter(&format!("added_after={after}")));
        assert!(page.objects.iter().all(|(a, _)| *a > 1_002_000));
        assert_eq!(page.objects.len(), 20 - 9);
        let page = object_page(objects(20), &filter("match[type]=identity"));
        assert_eq!(page.objects.len(), 10);
        let page = object_page(objects(20), &filter("match[id]=x--004,x--005"));
        assert_eq!(page.objects.len(), 2);
        let page = object_page(objects(20), &filter("match[spec_version]=2.0"));
        assert!(page.objects.is_empty());
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        for (query, expected) in [
            ("limit=0", "limit"),
            ("limit=x", "limit"),
            ("added_after=soon", "added_after"),
            ("next=zzz", "next"),
        ] {
            let error = Filter::from_query(serde_urlencoded::from_str(query).unwrap()).err().unwrap();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.description.contains(expected), "{query}: {error:?}");
        }
    }
}
