"""The developer portal: each service's upstream OpenAPI document as a gateway client sees it."""
