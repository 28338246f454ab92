//! The demo's embedded model server: a deterministic iris classifier speaking the Open Inference
//! Protocol the way MLServer does (`predict` output, `INT64`, shape `[N, 1]`).

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const MODEL_NAME: &str = "iris";
pub const FEATURES: [&str; 4] = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

/// The classifier: the decision tree a depth-2 CART finds on the iris data.
pub fn classify(row: &[f64]) -> i64 {
    let (petal_length, petal_width) = (row[2], row[3]);
    if petal_length < 2.45 {
        0
    } else if petal_width < 1.75 {
        1
    } else {
        2
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener) {
    let recommender = super::recommender::Recommender::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let recommender = recommender.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let recommender = recommender.clone();
                async move { handle(request, &recommender).await }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    recommender: &super::recommender::Recommender,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    // The recommender: GET /recommend/{variant}?user=U, and GET /clicks/{variant}?item=N.
    if let Some(variant) = path.strip_prefix("/recommend/") {
        let user = query(&request, "user").unwrap_or_default();
        return Ok(match recommender.recommend(variant, &user) {
            Some(list) => reply(StatusCode::OK, list),
            None => reply(StatusCode::NOT_FOUND, json!({"error": "no such variant"})),
        });
    }
    if let Some(variant) = path.strip_prefix("/clicks/") {
        let item = query(&request, "item").and_then(|i| i.parse::<usize>().ok());
        let clicked = item.is_some_and(|item| recommender.click(variant, item));
        return Ok(reply(
            if clicked {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            },
            json!({"clicked": clicked}),
        ));
    }
    let infer_path = format!("/v2/models/{MODEL_NAME}/infer");
    let metadata_path = format!("/v2/models/{MODEL_NAME}");
    Ok(match (request.method().clone(), path.as_str()) {
        (Method::GET, "/v2/health/live" | "/v2/health/ready") => reply(StatusCode::OK, json!({})),
        (Method::GET, p) if p == metadata_path => reply(
            StatusCode::OK,
            json!({
                "name": MODEL_NAME,
                "platform": "driftwatch-demo",
                "inputs": [{"name": "predict", "datatype": "FP64", "shape": [-1, 4]}],
                "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1, 1]}],
            }),
        ),
        (Method::POST, p) if p == infer_path => {
            let body = match request.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    return Ok(reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": "unreadable body"}),
                    ));
                }
            };
            match infer(&body) {
                Ok(value) => reply(StatusCode::OK, value),
                Err(message) => reply(StatusCode::BAD_REQUEST, json!({"error": message})),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no route {path}")}),
        ),
    })
}

fn infer(body: &[u8]) -> Result<Value, String> {
    // Python clients write NaN as a bare token; accept it like MLServer does.
    let request: Value =
        crate::extract::lenient::parse(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let input = request["inputs"].get(0).ok_or("expected inputs[0]")?;
    let values: Vec<f64> = flatten(&input["data"]).ok_or("expected numeric data")?;
    if values.is_empty() || !values.len().is_multiple_of(FEATURES.len()) {
        return Err(format!("expected rows of {} values", FEATURES.len()));
    }
    let predictions: Vec<i64> = values.chunks(FEATURES.len()).map(classify).collect();
    Ok(json!({
        "model_name": MODEL_NAME,
        "id": request.get("id").cloned().unwrap_or(Value::Null),
        "parameters": {"content_type": "np"},
        "outputs": [{
            "name": "predict",
            "shape": [predictions.len(), 1],
            "datatype": "INT64",
            "parameters": {"content_type": "np"},
            "data": predictions,
        }],
    }))
}

fn flatten(data: &Value) -> Option<Vec<f64>> {
    let mut out = Vec::new();
    fn walk(value: &Value, out: &mut Vec<f64>) -> Option<()> {
        match value {
            Value::Array(items) => items.iter().try_for_each(|item| walk(item, out)),
            Value::Number(n) => {
                out.push(n.as_f64()?);
                Some(())
            }
            Value::String(text) => {
                out.push(crate::extract::lenient::non_finite(text)?);
                Some(())
            }
            _ => None,
        }
    }
    walk(data, &mut out)?;
    Some(out)
}

fn query(request: &Request<Incoming>, key: &str) -> Option<String> {
    request
        .uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_nested_and_flat_rows_like_mlserver() {
        let nested = br#"{"inputs":[{"name":"predict","shape":[2,4],"datatype":"FP32","data":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}]}"#;
        let out = infer(nested).unwrap();
        assert_eq!(out["outputs"][0]["data"], json!([0, 2]));
        assert_eq!(out["outputs"][0]["shape"], json!([2, 1]));
        let flat = br#"{"inputs":[{"name":"predict","shape":[1,4],"datatype":"FP64","data":[6.0,2.9,4.5,1.5]}]}"#;
        assert_eq!(infer(flat).unwrap()["outputs"][0]["data"], json!([1]));
        assert!(infer(br#"{"inputs":[{"data":[1,2,3]}]}"#).is_err());
        assert!(infer(b"not json").is_err());
    }
}
