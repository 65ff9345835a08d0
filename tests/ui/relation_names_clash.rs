use wyrmhole::Model;

#[derive(Model)]
struct User {
    id: i32,
    list_id: i32,
}

#[derive(Model)]
#[wyrm(has_many(owner = User, via = list_id))]
#[wyrm(has_many(members = User, via = list_id))]
#[wyrm(has_many(members = User, via = list_id))]
#[wyrm(has_many(title = User, via = list_id))]
#[wyrm(has_many(all__users = User, via = list_id))]
struct TodoList {
    id: i32,
    title: String,
    // `owner` names this key's relation (declared or not): `owner__id`.
    owner_id: i32,
    #[wyrm(belongs_to = User, relation = "title")]
    editor_id: i32,
}

fn main() {}
