//! CSV export executions for the front ends: asking for one ([`App::export`]), listing them
//! ([`App::exports`]), and taking the target's completion callback ([`App::export_callback`]),
//! verified as a Standard Webhooks delivery (or, opted in, by a secret callback path).

use cxrelay_core::config::Settings;
use cxrelay_core::export::{read_completion, ExportRequest, ExportState};
use cxrelay_core::input::InputFormat;
use cxrelay_core::profile::{ExportCompletion, ExportTarget};
use cxrelay_core::webhook::{signing_key, verify};
use cxrelay_core::{RunId, Secret};
use cxrelay_queue::exports::{ExportRow, Finish};

use crate::{App, AppError, NewRun};

/// Where the fields of a completion callback are: the seed's `{executionId, status,
/// rowsExported, startTime, endTime}`.
pub const CALLBACK_FIELDS: [&str; 5] = ["/executionId", "/status", "/rowsExported", "/startTime", "/endTime"];

/// What `App` needs of the export settings.
#[derive(Clone, Debug)]
pub(crate) struct ExportOptions {
    /// The profile's export API (its final states judge callbacks); `None` if the settings did
    /// not resolve (then exports are refused with the reason).
    target: Result<ExportTarget, String>,
    callback_url: Option<String>,
    callback_secret: Secret,
    path_secret: Secret,
    tolerance_secs: u64,
}

impl ExportOptions {
    pub(crate) fn from_settings(settings: &Settings) -> Self {
        let e = &settings.exports;
        Self {
            target: cxrelay_core::profile::export_target(settings).map_err(|e| e.to_string()),
            callback_url: e.callback_url.clone().filter(|u| !u.trim().is_empty()),
            callback_secret: e.callback_secret.clone(),
            path_secret: e.callback_path_secret.clone(),
            tolerance_secs: e.callback_tolerance_secs,
        }
    }
}

/// One callback delivery as received: the Standard Webhooks headers, or the secret of the
/// callback path it came to, and the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallbackDelivery<'a> {
    /// `webhook-id`.
    pub id: Option<&'a str>,
    /// `webhook-timestamp` (Unix seconds).
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`.
    pub signature: Option<&'a str>,
    /// The secret of `/v1/callbacks/export/{secret}`, when it came there.
    pub path_secret: Option<&'a str>,
    /// The body as sent.
    pub body: &'a [u8],
}

/// What a callback did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CallbackOutcome {
    /// The export (its run id).
    pub export: String,
    /// The target's execution id.
    pub execution_id: String,
    /// The export's state after the callback.
    pub state: ExportState,
    /// True when it had already ended: nothing changed.
    pub duplicate: bool,
}

impl App {
    fn export_target(&self) -> Result<&ExportTarget, AppError> {
        self.exports.target.as_ref().map_err(|e| AppError::NotAllowed(format!("exports are not configured correctly: {e}")))
    }

    /// Validates an export by the seed's rules and queues its submission as a run of kind
    /// `export` (one item: the execution payload), which workers submit through the same
    /// queue, retries, rate budget and breaker as items. Returns the export as listed.
    pub async fn export(&self, request: ExportRequest) -> Result<ExportRow, AppError> {
        let completion = self.export_target()?.completion;
        let mut request = request.validated().map_err(AppError::InvalidExport)?;
        if request.callback_url.is_none() && completion == ExportCompletion::Callback {
            request.callback_url = self.exports.callback_url.clone();
        }
        let mut line = serde_json::to_vec(&request.payload()).expect("json");
        line.push(b'\n');
        let mut checked = self.check(NewRun {
            run_id: None,
            action: request.data_action.clone(),
            tenant: None,
            idempotency_field: None,
            source: "export".into(),
            format: InputFormat::Ndjson,
            max_items: None,
            pause_on_failure_rate: None,
            failure_window: None,
        })?;
        let mut extra = vec![
            ("kind".to_owned(), "export".to_owned()),
            ("dataset".to_owned(), request.dataset.clone()),
            ("export_state".to_owned(), ExportState::Queued.as_str().to_owned()),
            ("max_rows".to_owned(), request.max_rows.to_string()),
            ("completion".to_owned(), completion.as_str().to_owned()),
        ];
        // Only whether there is one: the URL may hold the opt-in secret path, and the item
        // (which the target must be sent) is the one place it needs to be.
        if request.callback_url.is_some() {
            extra.push(("callback".to_owned(), "1".to_owned()));
        }
        checked.request.extra = extra;
        let run = checked.run.clone();
        let store = self.store().await?;
        store.index_export(&checked.request.tenant, &run, cxrelay_core::now_ms()).await?;
        self.enqueue(checked, std::io::Cursor::new(line), |_| {}).await?;
        self.export_status(run.as_str()).await
    }

    /// One export as listed.
    pub async fn export_status(&self, id: &str) -> Result<ExportRow, AppError> {
        let run = RunId::parse(id).map_err(|e| AppError::InvalidArgument { what: "export id", value: id.to_owned(), reason: e.to_string() })?;
        self.store().await?.export_row(&run).await?.ok_or(AppError::RunNotFound(run))
    }

    /// The tenant's exports, newest first, at most `limit`.
    pub async fn exports(&self, limit: usize) -> Result<Vec<ExportRow>, AppError> {
        Ok(self.store().await?.list_exports(&self.tenant, limit).await?)
    }

    /// A page of the tenant's exports, newest first, after `after` (the cursor of the previous
    /// page, as [`exports_page`](Self::exports_page) returned it), and the next page's cursor.
    pub async fn exports_page(&self, limit: usize, after: Option<&str>) -> Result<(Vec<ExportRow>, Option<String>), AppError> {
        let after = after
            .map(|c| {
                c.split_once(':')
                    .and_then(|(ms, id)| Some((ms.parse::<u64>().ok()?, id)))
                    .filter(|(_, id)| RunId::parse(id).is_ok())
                    .ok_or_else(|| AppError::InvalidArgument { what: "cursor", value: c.to_owned(), reason: "not a cursor this API gave out".into() })
            })
            .transpose()?;
        let (rows, next) = self.store().await?.export_page(&self.tenant, limit, after).await?;
        Ok((rows, next.map(|(ms, id)| format!("{ms}:{id}"))))
    }

    /// Takes a completion callback: checks who sent it (signature and freshness, or the secret
    /// path), reads `{executionId, status, rowsExported, startTime, endTime}`, and records the
    /// completion once (a repeated callback changes nothing). Refusals change nothing.
    pub async fn export_callback(&self, d: CallbackDelivery<'_>) -> Result<CallbackOutcome, AppError> {
        self.authenticate_callback(&d)?;
        let bad = |m: String| AppError::BadCallback(m);
        let doc: serde_json::Value = serde_json::from_slice(d.body)
            .map_err(|e| bad(format!("the body is not JSON: {e} (expected {{executionId, status, rowsExported, startTime, endTime}})")))?;
        let target = self.export_target()?;
        let c = read_completion(&doc, CALLBACK_FIELDS, None, |s| target.terminal(s)).map_err(|e| bad(e.0))?;
        let store = self.store().await?;
        let run = store.export_run(&self.tenant, &c.execution_id).await?.ok_or_else(|| AppError::UnknownExecution(c.execution_id.clone()))?;
        let finish = store.export_complete(&run, &self.tenant, &c, "callback").await?;
        let (state, duplicate) = match finish {
            Finish::Changed(s) | Finish::Unchanged(s) => (s, false),
            Finish::Duplicate(s) => (s, true),
        };
        Ok(CallbackOutcome { export: run.to_string(), execution_id: c.execution_id, state, duplicate })
    }

    fn authenticate_callback(&self, d: &CallbackDelivery<'_>) -> Result<(), AppError> {
        let no = |m: &str| Err(AppError::Unauthorized(m.to_owned()));
        if let Some(given) = d.path_secret {
            let want = self.exports.path_secret.expose();
            return if !want.is_empty() && bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), want.as_bytes())) {
                Ok(())
            } else {
                no("unknown callback path")
            };
        }
        if self.exports.callback_secret.is_empty() {
            return no("signed export callbacks are not configured: set CXRELAY_EXPORT_CALLBACK_SECRET (exports.callback_secret)");
        }
        let (Some(id), Some(ts), Some(sig)) = (d.id, d.timestamp, d.signature) else {
            return no("unsigned callback: webhook-id, webhook-timestamp and webhook-signature are required");
        };
        let Ok(sent) = ts.trim().parse::<i64>() else { return no("webhook-timestamp is not a Unix time in seconds") };
        let now = (cxrelay_core::now_ms() / 1000) as i64;
        if (now - sent).unsigned_abs() > self.exports.tolerance_secs {
            return Err(AppError::Unauthorized(format!(
                "stale callback: webhook-timestamp is {} s from now (tolerance {} s)",
                now - sent,
                self.exports.tolerance_secs
            )));
        }
        let key = signing_key(&self.exports.callback_secret).map_err(|e| AppError::NotAllowed(format!("exports.callback_secret: {e}")))?;
        if !verify(&key, id, ts, d.body, sig) {
            return no("the webhook-signature does not match the body");
        }
        Ok(())
    }
}
