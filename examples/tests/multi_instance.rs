//! Two `merchant-server` processes sharing one database and one Redis, with
//! one `iamport-sandbox` process as their gateway: many concurrent partial
//! refunds spread over both instances, some with an `Idempotency-Key`, some
//! sent to both instances at once with the same key. Afterwards no payment
//! is refunded beyond its amount, both instances and the gateway agree on
//! every payment to the won (and cent), each keyed refund reached the
//! gateway once, no answer was a 5xx, and the whole cluster used one
//! access token.
//!
//! Runs once per shared database: PostgreSQL, MariaDB and MongoDB, and on
//! PostgreSQL once more with the cluster on PortOne V2. Needs
//! the cargo features `postgres`, `mysql`, `mongo` and `redis` (the
//! binaries pick backends by feature); `scripts/test` builds with
//! `--all-features`, and a build without them fails these tests under
//! `CI=true` and skips them loudly elsewhere. The figures go to stderr.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use common::{report, Answer, MerchantServer, SandboxProcess, TestDatabase};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use refund_core::{Amount, Currency};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Payments seeded at the gateway: mostly KRW, a few USD to keep cents exact.
const PAYMENTS: usize = 30;
const USD_PAYMENTS: usize = 5;
/// Refund requests planned; a twin (same key, sent to both instances at
/// once) is one planned request and two HTTP requests.
const REQUESTS: usize = 200;
/// HTTP requests in flight at once.
const CONCURRENCY: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_postgresql_and_redis() {
    let Some(redis) = common::redis_url() else {
        return;
    };
    if let Some(database) = TestDatabase::postgres().await {
        run(database, &redis).await;
    }
    // Then the same on PortOne V2, after (not beside) the others: three
    // clusters at once are what a shared CI machine bears.
    if let Some(database) = TestDatabase::postgres().await {
        run_on(database, &redis, Api::Portone).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_mariadb_and_redis() {
    let Some(redis) = common::redis_url() else {
        return;
    };
    if let Some(database) = TestDatabase::mariadb().await {
        run(database, &redis).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_mongodb_and_redis() {
    let Some(redis) = common::redis_url() else {
        return;
    };
    if let Some(database) = TestDatabase::mongo().await {
        run(database, &redis).await;
    }
}

/// A payment of the run.
struct Order {
    merchant_uid: String,
    imp_uid: String,
    currency: Currency,
}

/// One planned refund request.
struct Planned {
    order: usize,
    body: Value,
    key: Option<String>,
    /// Sent to both instances at once, with the same key.
    twin: bool,
    /// The instance a single request goes to.
    instance: usize,
}

/// What one HTTP request got.
struct Sent {
    plan: usize,
    instance: usize,
    answer: Answer,
}

/// Which gateway API the cluster speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Iamport,
    /// PortOne V2 with its API secret (no tokens to share).
    Portone,
}

async fn run(database: TestDatabase, redis: &str) {
    run_on(database, redis, Api::Iamport).await;
}

async fn run_on(database: TestDatabase, redis: &str, api: Api) {
    let label = match api {
        Api::Iamport => database.engine.label().to_owned(),
        Api::Portone => format!("{}, PortOne V2", database.engine.label()),
    };
    let sandbox = match api {
        Api::Iamport => SandboxProcess::start().await,
        Api::Portone => SandboxProcess::start_portone().await,
    };
    let redis_env = [("REFUND_REDIS_URL", redis)];
    // Both start (and migrate or index the database) at the same time.
    let start = || async {
        match api {
            Api::Iamport => MerchantServer::start(&sandbox, &database.url, &redis_env).await,
            Api::Portone => {
                MerchantServer::start_portone(&sandbox, &database.url, &redis_env).await
            }
        }
    };
    let (a, b) = tokio::join!(start(), start());
    let servers = Arc::new([a, b]);

    let orders = seed_orders(&sandbox, &servers, api).await;
    let seed: u64 = rand::random();
    let plan = Arc::new(plan_requests(&orders, seed));
    if api == Api::Iamport {
        let imported = sandbox.stats().await;
        assert_eq!(
            imported.get_token.requests, 1,
            "both instances imported payments with one token fetched for the cluster"
        );
        // The shared token dies just before the storm: the first requests on
        // both instances get a 401 at once, and the cluster must refresh once.
        sandbox.arm(json!({"fault": "revoke_tokens"})).await;
    }
    let before = sandbox.stats().await;

    let started = Instant::now();
    let sent = send_all(&servers, &plan).await;
    let elapsed = started.elapsed();
    let after = sandbox.stats().await;

    let succeeded = check_answers(&plan, &sent, &orders);
    let committed = after.cancel.committed - before.cancel.committed;
    let attempted = after.cancel.attempted - before.cancel.attempted;
    let distinct: usize = succeeded.iter().map(HashMap::len).sum();
    assert_eq!(
        committed as usize, distinct,
        "one gateway cancel per distinct succeeded refund (keyed twins included)"
    );
    if api == Api::Iamport {
        assert_eq!(
            (after.get_token.requests, after.get_token.minted),
            (2, 2),
            "the whole cluster shares one access token through Redis, and one refresh"
        );
    }
    // Cancels were the storm's only authenticated calls (no refusal made
    // anyone re-read a payment), so every 401 was a cancel, retried once.
    // On V2 a cancel's answer names the cancellation only, so each applied
    // one is read back once, and nothing else is.
    let read_backs = match api {
        Api::Iamport => 0,
        Api::Portone => committed,
    };
    assert_eq!(
        (after.get_payment, after.find_payment),
        (before.get_payment + read_backs, before.find_payment)
    );
    let refused_tokens = after.unauthorized - before.unauthorized;
    assert!(
        refused_tokens >= 1 || api == Api::Portone,
        "the revoked token was refused"
    );
    assert_eq!(
        attempted,
        committed + refused_tokens,
        "no cancel reached the gateway only to be refused (stale checksum)"
    );
    check_payments(&sandbox, &servers, &orders, &succeeded, api).await;
    check_replays(&sandbox, &servers, &plan, &sent).await;

    let credentials = match api {
        Api::Iamport => format!(
            "access tokens for the cluster: {} minted in {} getToken calls (the first revoked \
             before the storm, {refused_tokens} calls refused with 401 and retried)",
            after.get_token.minted, after.get_token.requests,
        ),
        Api::Portone => {
            format!("the API secret on every call; {read_backs} applied cancels read back")
        }
    };
    report(&format!(
        "multi-instance [{label}] (seed {seed}): {PAYMENTS} payments, {REQUESTS} planned refunds \
         = {} HTTP requests over 2 instances, concurrency {CONCURRENCY}, in {elapsed:.2?}: {}; \
         gateway: {committed} cancels committed of {attempted} attempted; {credentials}",
        sent.len(),
        tally(&sent),
    ));
    drop(servers);
    database.remove().await;
}

/// Seeds the payments at the gateway and imports each through the webhook
/// of one instance or the other.
async fn seed_orders(
    sandbox: &SandboxProcess,
    servers: &[MerchantServer; 2],
    api: Api,
) -> Vec<Order> {
    let run = common::random_hex(4);
    let mut orders = Vec::new();
    for i in 0..PAYMENTS {
        let usd = i < USD_PAYMENTS;
        let merchant_uid = format!("mi-{run}-{i}");
        let (amount, extra, currency) = match usd {
            true => ("100", json!({"currency": "USD"}), Currency::Usd),
            false => ("10000", json!({}), Currency::Krw),
        };
        let imp_uid = match api {
            Api::Iamport => sandbox.create_payment(&merchant_uid, amount, extra).await,
            Api::Portone => {
                let minor = currency.parse_major(amount).unwrap().minor();
                let transaction_id = sandbox
                    .create_portone_payment_in(&merchant_uid, minor, currency.code())
                    .await;
                let answer = servers[i % 2]
                    .portone_webhook(&merchant_uid, &transaction_id)
                    .await;
                assert_eq!(answer.status, 200, "webhook: {}", answer.text);
                transaction_id
            }
        };
        if api == Api::Iamport {
            servers[i % 2].import(&imp_uid, &merchant_uid).await;
        }
        orders.push(Order {
            merchant_uid,
            imp_uid,
            currency,
        });
    }
    orders
}

/// Random partial refunds (one in twenty asks for the whole balance),
/// 40 % of them with a key, a quarter of those sent to both instances.
fn plan_requests(orders: &[Order], seed: u64) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..REQUESTS)
        .map(|i| {
            let order = rng.gen_range(0..orders.len());
            let currency = orders[order].currency;
            let mut body = json!({
                "merchant_uid": orders[order].merchant_uid,
                "reason": format!("multi-instance refund {i}"),
            });
            if !rng.gen_bool(0.05) {
                let minor = match currency {
                    Currency::Usd => rng.gen_range(1..=2000),
                    _ => rng.gen_range(1..=25) * 100,
                };
                let text = currency.format_major(Amount::from_minor(minor));
                body["cancel_request_amount"] = serde_json::from_str(&text).unwrap();
            }
            let keyed = rng.gen_bool(0.4);
            Planned {
                order,
                body,
                key: keyed.then(|| format!("mi-key-{seed}-{i}")),
                twin: keyed && rng.gen_bool(0.25),
                instance: rng.gen_range(0..2),
            }
        })
        .collect()
}

/// Sends every planned request, at most [`CONCURRENCY`] HTTP requests at
/// once; a twin's two requests leave together.
async fn send_all(servers: &Arc<[MerchantServer; 2]>, plan: &Arc<Vec<Planned>>) -> Vec<Sent> {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for index in 0..plan.len() {
        let (servers, plan, permits) = (servers.clone(), plan.clone(), permits.clone());
        tasks.spawn(async move {
            let planned = &plan[index];
            let key = planned.key.as_deref();
            if planned.twin {
                let _permits = permits.acquire_many(2).await.unwrap();
                let (first, second) = tokio::join!(
                    servers[0].cancel(&planned.body, key),
                    servers[1].cancel(&planned.body, key),
                );
                vec![(0, first), (1, second)]
            } else {
                let _permit = permits.acquire().await.unwrap();
                let answer = servers[planned.instance].cancel(&planned.body, key).await;
                vec![(planned.instance, answer)]
            }
            .into_iter()
            .map(|(instance, answer)| Sent {
                plan: index,
                instance,
                answer,
            })
            .collect::<Vec<_>>()
        });
    }
    let mut sent = Vec::new();
    while let Some(result) = tasks.join_next().await {
        sent.extend(result.expect("a request task"));
    }
    sent
}

/// Checks every answer against the contract and returns the succeeded
/// refunds per order: refund id to amount (minor units).
fn check_answers(plan: &[Planned], sent: &[Sent], orders: &[Order]) -> Vec<HashMap<String, i64>> {
    let mut succeeded: Vec<HashMap<String, i64>> = orders.iter().map(|_| HashMap::new()).collect();
    let mut twin_ids: HashMap<usize, HashSet<String>> = HashMap::new();
    for s in sent {
        let planned = &plan[s.plan];
        let answer = &s.answer;
        assert!(answer.status < 500, "a 5xx answer: {}", answer.text);
        match (answer.status, answer.code()) {
            (200, _) => {
                let view = answer.view();
                let refund = view.refund.expect("a refund in a 200 answer");
                assert_eq!(refund.status, "succeeded", "{}", answer.text);
                let amount = common::minor(&refund.amount, view.currency);
                let previous = succeeded[planned.order].insert(refund.id.clone(), amount);
                assert!(previous.is_none_or(|p| p == amount), "{}", answer.text);
                if planned.twin {
                    twin_ids.entry(s.plan).or_default().insert(refund.id);
                }
            }
            // A twin may find its sibling's refund still pending and
            // answer with it: that is the stored outcome so far.
            (202, "refund_pending") if planned.twin => {}
            (
                409,
                "refund_in_progress"
                | "already_refunded"
                | "amount_exceeds_cancelable"
                | "payment_out_of_sync",
            ) => {}
            _ => panic!(
                "unexpected answer from instance {}: {} {}",
                s.instance, answer.status, answer.text
            ),
        }
    }
    for (index, ids) in twin_ids {
        assert_eq!(
            ids.len(),
            1,
            "twin request {index} (same key on both instances) made two refunds"
        );
    }
    succeeded
}

/// Both instances and the gateway agree on every payment, nothing is
/// refunded beyond its amount, nothing is left pending, and the succeeded
/// answers add up to what the gateway cancelled.
async fn check_payments(
    sandbox: &SandboxProcess,
    servers: &[MerchantServer; 2],
    orders: &[Order],
    succeeded: &[HashMap<String, i64>],
    api: Api,
) {
    for (order, refunds) in orders.iter().zip(succeeded) {
        let gateway = match api {
            Api::Iamport => sandbox.payment(&order.imp_uid).await,
            Api::Portone => sandbox.portone_payment(&order.merchant_uid).await,
        };
        assert_eq!(gateway.merchant_uid, order.merchant_uid);
        assert!(gateway.cancel_amount() <= gateway.amount(), "over-refunded");
        let answered: i64 = refunds.values().sum();
        assert_eq!(
            gateway.cancel_amount(),
            answered,
            "{}: the gateway's total equals the succeeded answers",
            order.merchant_uid
        );
        for server in servers {
            let view = server.view(&order.merchant_uid).await.view();
            assert_eq!(view.cancel_amount(), gateway.cancel_amount(), "{view:?}");
            assert_eq!(view.status, gateway.status);
            assert!(view.pending_refunds.is_empty(), "{view:?}");
            assert_eq!(view.cancel_history.len(), refunds.len(), "{view:?}");
        }
    }
}

/// After the storm: a keyed refund asked again on the other instance
/// replays its outcome without a gateway call, and its key with another
/// body is refused.
async fn check_replays(
    sandbox: &SandboxProcess,
    servers: &[MerchantServer; 2],
    plan: &[Planned],
    sent: &[Sent],
) {
    let Some(first) = sent
        .iter()
        .find(|s| s.answer.status == 200 && plan[s.plan].key.is_some())
    else {
        return;
    };
    let planned = &plan[first.plan];
    let key = planned.key.as_deref();
    let before = sandbox.stats().await;
    let other = &servers[1 - first.instance];
    let replay = other.cancel(&planned.body, key).await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    let original = first.answer.view().refund.unwrap().id;
    assert_eq!(replay.view().refund.unwrap().id, original);
    let mut changed = planned.body.clone();
    changed["reason"] = json!("another reason");
    let reused = other.cancel(&changed, key).await;
    assert_eq!(
        (reused.status, reused.code()),
        (409, "idempotency_key_reused")
    );
    assert_eq!(sandbox.stats().await.cancel, before.cancel);
}

/// `200 succeeded=.., 202 pending=.., 409 <code>=..`, for the report.
fn tally(sent: &[Sent]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in sent {
        let what = match s.answer.status {
            200 => "200 succeeded".to_owned(),
            status => format!("{status} {}", s.answer.code()),
        };
        *counts.entry(what).or_default() += 1;
    }
    counts
        .iter()
        .map(|(what, n)| format!("{what}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
