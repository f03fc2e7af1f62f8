"""No views: the project is only ever driven through the ORM."""

urlpatterns: list[object] = []
