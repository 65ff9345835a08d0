use wyrmhole::Model;

#[derive(Model)]
struct ListMember {
    id: i32,
    list: i32,
    user_id: i32,
}

#[derive(Model)]
#[wyrm(has_many(members = ListMember, via = list_id))]
struct TodoList {
    id: i32,
}

fn main() {}
