//! `GET /api/reports/{file}`: a shipment report's PDF, for its farm only.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use crate::{
    auth::AuthUser,
    error::{ApiError, ApiPath},
    herd::{Date, herd},
    report::{layout, parse_report_id, pdf},
    state::AppState,
};

/// `GET /api/reports/{reportId}.pdf`: the signed-in user's farm's report for that month.
pub async fn get(
    State(_state): State<AppState>,
    auth: AuthUser,
    ApiPath(file): ApiPath<String>,
) -> Result<Response, ApiError> {
    let not_found =
        || ApiError::NotFound(format!("報告書 {file} は見つかりません / no report {file}"));
    let id = file.strip_suffix(".pdf").ok_or_else(not_found)?;
    let (y, m) = parse_report_id(id).ok_or_else(not_found)?;
    let today = Date::today();
    let month_start = Date::from_ymd(y, m, 1);
    if month_start > today {
        return Err(not_found());
    }
    // A past month's report covers all of it; this month's covers up to today.
    let as_of = month_start.last_of_month().min(today);
    let farm_herd = herd(auth.user.tenant, as_of);
    let (texts, rules) = layout(
        crate::directory::farm_name(auth.user.tenant),
        id,
        &farm_herd,
    );
    let bytes = tokio::task::spawn_blocking(move || pdf(&texts, &rules))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{id}.pdf\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}
