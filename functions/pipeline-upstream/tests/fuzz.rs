//! Arbitrary bodies through the whole router (a memory stream behind it): never a panic, a 4xx
//! for anything that is not an item, and nothing put on the stream unless the answer is 200.

use std::sync::Arc;

use lambda_http::Body;
use proptest::prelude::*;
use tower::ServiceExt;

fn post(body: Vec<u8>) -> (u16, usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let stream = Arc::new(pipeline::memory::MemoryStream::new());
        let request = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/items")
            .header("content-type", "application/json")
            .body(Body::Binary(body))
            .unwrap();
        let response = pipeline_upstream::lambda::service(stream.clone()).oneshot(request).await.unwrap();
        (response.status().as_u16(), stream.records().len())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_bytes_are_a_client_error_and_put_nothing(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let (status, put) = post(body);
        if status == 200 {
            prop_assert_eq!(put, 1);
        } else {
            prop_assert!((400..500).contains(&status), "{}", status);
            prop_assert_eq!(put, 0);
        }
    }

    #[test]
    fn objects_with_arbitrary_fields_are_taken_or_refused_with_400(
        id in ".{0,3}", message in ".{0,3}", timestamp in any::<f64>(), extra in ".{0,20}",
    ) {
        let body = serde_json::json!({"id": id, "message": message, "timestamp": timestamp, "extra": extra});
        let (status, put) = post(body.to_string().into_bytes());
        prop_assert!(status == 200 || status == 400, "{}", status);
        prop_assert_eq!(put, usize::from(status == 200));
    }
}
