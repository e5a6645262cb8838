"""Where the local upstream server keeps the entries tests look for, and the review table
that reads the password and tokens from files beside config.toml."""

PAID_TITLE = "Members only: what I learned from a year of paid newsletters"
PAID_PATH = "/a-year-of-paid-newsletters/"
MUSK_PATH = "/does-elon-musk-want-to-buy-openai/"
COURTS_PATH = "/the-courts-and-the-executive-order/"
SIMDJSON_PATH = "/articles/json-parsing-simdjson-vs-json-for-modern-c/"
WORDPRESS_PATH = "/articles/want-to-see-a-more-diverse-wordpress-contributor-community/"
REVIEW = '[review]\npassword_file = "review-password"\napi_tokens_file = "api-tokens"'
