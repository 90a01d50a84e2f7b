"""The web app: search page, about page and JSON API over the search engine (`ogasearch serve`)."""
