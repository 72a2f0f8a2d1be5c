"""The web page served by ``app.py`` (Streamlit): :mod:`webapp.page` draws it, :mod:`webapp.runs` decides
what it may list and open. Sits above ``evaluation`` with the entry scripts."""
